"""Temperature-composition phase diagrams of binary alloys from free energies F(x, T).

At fixed temperature the equilibrium free energy per site of a binary alloy is the lower convex
envelope of f(x): wherever f lies above its convex hull, a mixture of the two hull compositions
at the ends of that hull edge has a lower free energy (the common-tangent construction), so the
edge spans a two-phase region and its end points are the binodal compositions.

Phases are labelled from the sublattice order parameters of canonical scans; order-disorder
temperatures of the ordered compositions are bracketed by cooling scans (from random) and
heating scans (from the perfect phase), with the heat-capacity peak of the cooling scan beside.
The semi-grand canonical composition at chemical potential dmu (energy E - dmu * sum_i s_i with
s = 2x - 1) minimises f(x) - dmu (2x - 1), i.e. 2 dmu = df/dx (per site; the 2 because s, not x,
couples to dmu), which gives an independent cross-check against semi-grand MCMC x(dmu) curves.
On a composition grid only the hull vertices can be minimisers, so the predicted x(dmu) is a
staircase on the grid; the exact composition lies between the vertex's hull neighbours (0 and 1
beyond the grid's ends), the bracket the check reports. Semi-grand scans that sweep dmu up and
down disagree where a first-order jump lags behind in each direction: their hysteresis windows
bracket the coexistence dmu at each temperature.

A variance-constrained semi-grand (VCSGC) phi scan gives F(c)/N up to a constant at one
temperature on the grid of compositions n / N it visits, also inside two-phase regions (its
composition histograms reweighted together, :func:`lattherm.mcmc.vcsgc.vcsgc_free_energy`):
:func:`vcsgc_cross_check` compares it with the canonical F(x) (after removing the one constant)
and its common tangents with the canonical hull's.

All functions take free energies per site on a composition grid; energies and dmu share units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lattherm.errors import LatthermError


class PhaseDiagramError(LatthermError):
    """Malformed free-energy input: unsorted, duplicated, too short or non-finite grids."""


def _check_grid(x, f) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    f = np.asarray(f, dtype=float)
    if x.ndim != 1 or x.shape != f.shape:
        raise PhaseDiagramError(f"compositions and free energies must be 1-D of equal length, got {x.shape} and {f.shape}")
    if len(x) < 2:
        raise PhaseDiagramError(f"need at least two compositions, got {len(x)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f))):
        raise PhaseDiagramError("compositions and free energies must be finite")
    if np.any(np.diff(x) <= 0):
        raise PhaseDiagramError("compositions must be strictly increasing (sort them and drop duplicates)")
    return x, f


def lower_hull(x, f) -> np.ndarray:
    """Indices of the vertices of the lower convex hull of the points (x, f), in increasing x.

    Andrew's monotone chain: points on a straight hull edge are dropped, so a vertex is kept only
    where the slope strictly increases.
    """
    x, f = _check_grid(x, f)
    hull: list[int] = []
    for k in range(len(x)):
        while len(hull) >= 2:
            i, j = hull[-2], hull[-1]
            # Drop j if it lies on or above the chord from i to k (cross product <= 0).
            cross = (x[j] - x[i]) * (f[k] - f[i]) - (f[j] - f[i]) * (x[k] - x[i])
            if cross > 0:
                break
            hull.pop()
        hull.append(k)
    return np.asarray(hull, dtype=int)


def two_phase_regions(x, f, tol: float = 1e-12) -> list[tuple[float, float]]:
    """Binodal pairs (x_left, x_right) of the two-phase regions of f(x) at one temperature.

    A hull edge is a two-phase region when some grid point between its ends lies above the edge
    by more than ``tol`` (absolute, in the units of f); ``tol`` screens out rounding and, for
    noisy Monte Carlo free energies, fluctuations below the statistical error. The binodals are
    exact up to the grid spacing.
    """
    if tol < 0:
        raise PhaseDiagramError(f"tol must be non-negative, got {tol}")
    x, f = _check_grid(x, f)
    hull = lower_hull(x, f)
    regions = []
    for i, j in zip(hull[:-1], hull[1:]):
        if j - i < 2:
            continue
        inner = slice(i + 1, j)
        chord = f[i] + (f[j] - f[i]) * (x[inner] - x[i]) / (x[j] - x[i])
        if np.max(f[inner] - chord) > tol:
            regions.append((float(x[i]), float(x[j])))
    return regions


def composition_at_dmu(x, f, dmu: float) -> tuple[float, float, float]:
    """Equilibrium semi-grand composition argmin_x f(x) - dmu (2x - 1) on the grid, and the
    bracket (low, high) that holds the exact one.

    Only hull vertices can be minimisers; at a dmu that equals the slope of a two-phase edge
    both ends are degenerate and the lower composition is returned. Where 2 dmu lies between
    the slopes of the hull edges left and right of the vertex, a convex f(x) has its slope
    2 dmu between the vertex's neighbours (0 or 1 past the grid's first or last point).
    """
    x, f = _check_grid(x, f)
    hull = lower_hull(x, f)
    omega = f[hull] - dmu * (2.0 * x[hull] - 1.0)
    k = int(np.argmin(omega))
    low = float(x[hull][k - 1]) if k > 0 else 0.0
    high = float(x[hull][k + 1]) if k < len(hull) - 1 else 1.0
    return float(x[hull][k]), low, high


def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PhaseDiagramError(f"{what} table lacks column(s) {missing}; it has {list(table.columns)}")


def phase_boundaries(
    table: pd.DataFrame,
    *,
    composition: str = "concentration",
    free_energy: str = "free_energy_per_site",
    tol: float = 1e-12,
) -> pd.DataFrame:
    """Two-phase regions at every temperature of a tidy F(x, T) table.

    Args:
        table: one row per (temperature, composition) with the columns ``temperature``,
            ``composition`` and ``free_energy`` (per site).
        tol: see :func:`two_phase_regions`.

    Returns:
        Tidy table with columns temperature, x_left, x_right (one row per region; temperatures
        without a two-phase region have no rows).
    """
    _require(table, ["temperature", composition, free_energy], "free-energy")
    rows = []
    for temperature, group in table.groupby("temperature", sort=True):
        group = group.sort_values(composition)
        for left, right in two_phase_regions(group[composition], group[free_energy], tol=tol):
            rows.append({"temperature": float(temperature), "x_left": left, "x_right": right})
    return pd.DataFrame(rows, columns=["temperature", "x_left", "x_right"])


def peak_position(t, c) -> float:
    """Location of the maximum of c(t): the vertex of the parabola through the largest sample
    and its two neighbours (exact for a quadratic peak on any grid). NaN when the largest
    sample is at either end of the grid: the peak then lies outside the scanned range."""
    t, c = _check_grid(t, c)
    k = int(np.argmax(c))
    if k == 0 or k == len(t) - 1:
        return float("nan")
    t0, t1, t2 = t[k - 1 : k + 2]
    c0, c1, c2 = c[k - 1 : k + 2]
    # Vertex of the interpolating parabola (Lagrange form), valid for unequal spacings.
    num = (t1 - t0) ** 2 * (c1 - c2) - (t1 - t2) ** 2 * (c1 - c0)
    den = (t1 - t0) * (c1 - c2) - (t1 - t2) * (c1 - c0)
    return float(t1 - 0.5 * num / den)


def order_disorder_temperatures(
    table: pd.DataFrame,
    *,
    composition: str = "concentration",
    heat_capacity: str = "heat_capacity_per_site",
) -> pd.DataFrame:
    """Order-disorder temperature at each composition from the heat-capacity peak.

    Returns a table with columns concentration (named ``composition``) and temperature; NaN
    where the peak lies outside the scanned temperatures.
    """
    _require(table, ["temperature", composition, heat_capacity], "heat-capacity")
    rows = []
    for x, group in table.groupby(composition, sort=True):
        group = group.sort_values("temperature")
        rows.append({composition: float(x), "temperature": peak_position(group["temperature"], group[heat_capacity])})
    return pd.DataFrame(rows, columns=[composition, "temperature"])


def semi_grand_compositions(
    table: pd.DataFrame,
    dmus,
    *,
    composition: str = "concentration",
    free_energy: str = "free_energy_per_site",
) -> pd.DataFrame:
    """Predicted semi-grand x(dmu, T) from a canonical F(x, T) table (see :func:`composition_at_dmu`).

    Returns a tidy table with columns temperature, dmu, ``composition`` and its bracket
    ``composition``_low, ``composition``_high.
    """
    _require(table, ["temperature", composition, free_energy], "free-energy")
    columns = ["temperature", "dmu", composition, f"{composition}_low", f"{composition}_high"]
    rows = []
    for temperature, group in table.groupby("temperature", sort=True):
        group = group.sort_values(composition)
        for dmu in np.asarray(dmus, dtype=float):
            rows.append([float(temperature), float(dmu), *composition_at_dmu(group[composition], group[free_energy], dmu)])
    return pd.DataFrame(rows, columns=columns, dtype=float)


HYSTERESIS_SIGMAS = 4.0  # up and down differ by more than this many combined standard errors


def hysteresis_windows(table: pd.DataFrame, sigmas: float = HYSTERESIS_SIGMAS) -> pd.DataFrame:
    """The dmu windows where semi-grand scans swept up and down disagree, per temperature.

    ``table``: tidy semi-grand scans (temperature, dmu, direction ``up`` / ``down``,
    composition, composition_err, n_sites). At a dmu the directions disagree when their mean
    compositions differ by more than ``sigmas`` combined standard errors and by more than one
    site (1 / n_sites: a smaller difference is no phase). Consecutive disagreeing dmus of the
    scans' grid form one window (a hysteresis loop: the metastable phase of each direction
    survives past the coexistence dmu, which lies inside). One row per window: temperature,
    dmu_low, dmu_high, and at the dmu of the largest gap the two compositions and the gap in
    standard errors. Temperatures without hysteresis have no rows.
    """
    _require(table, ["temperature", "dmu", "direction", "composition", "composition_err", "n_sites"], "semi-grand")
    columns = ["temperature", "dmu_low", "dmu_high", "dmu_max_gap", "composition_up", "composition_down",
               "gap_sigmas", "n_sites"]
    rows = []
    for temperature, group in table.groupby("temperature", sort=True):
        up, down = (group[group.direction == d].set_index("dmu").sort_index() for d in ("up", "down"))
        if up.empty or down.empty:
            raise PhaseDiagramError(f"semi-grand scans at T = {temperature}: need both directions (up and down), "
                                    f"got {sorted(set(group.direction))}")
        both = up[["composition", "composition_err"]].join(down[["composition", "composition_err"]], how="inner",
                                                             lsuffix="_up", rsuffix="_down")
        n_sites = int(group.n_sites.iloc[0])
        gap = (both.composition_up - both.composition_down).abs()
        error = np.hypot(both.composition_err_up, both.composition_err_down)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(error > 0, gap / error, np.where(gap > 0, np.inf, 0.0))
        disagree = (gap.to_numpy() > sigmas * error.to_numpy()) & (gap.to_numpy() > 1.0 / n_sites)
        start = None
        for k in range(len(both) + 1):
            if k < len(both) and disagree[k]:
                start = k if start is None else start
                continue
            if start is not None:
                window = slice(start, k)
                worst = start + int(np.argmax(gap.to_numpy()[window]))
                rows.append([float(temperature), float(both.index[start]), float(both.index[k - 1]),
                             float(both.index[worst]), float(both.composition_up.iloc[worst]),
                             float(both.composition_down.iloc[worst]), float(z[worst]), n_sites])
                start = None
    return pd.DataFrame(rows, columns=columns)


VCSGC_SIGMAS = 4.0  # a canonical and a VCSGC free energy differing by more disagree
VCSGC_CHECK_COLUMNS = ["temperature", "concentration", "free_energy_canonical", "free_energy_canonical_err",
                       "free_energy_vcsgc", "free_energy_vcsgc_err", "difference", "difference_err",
                       "difference_sigmas", "difference_mev", "consistent", "n_sites"]
VCSGC_BINODAL_COLUMNS = ["temperature", "x_left_canonical", "x_right_canonical", "x_left_vcsgc", "x_right_vcsgc",
                         "slope_canonical", "slope_vcsgc", "agree", "n_sites"]
VCSGC_CURVE_COLUMNS = ["temperature", "composition", "free_energy_per_site", "free_energy_per_site_err", "n_sites"]


def _edge_slope(x, f, left: float, right: float) -> float:
    i, j = int(np.argmin(np.abs(x - left))), int(np.argmin(np.abs(x - right)))
    return float((f[j] - f[i]) / (x[j] - x[i]))


def _bracket(x: np.ndarray, binodal: float) -> tuple[float, float]:
    """Where the exact binodal lies: between the grid neighbours of its hull vertex (from 0, or
    to 1, past the grid's first or last point). Inside the vertex where F rises above the common
    tangent next to it; outside where F lies nearly on the tangent up to the vertex and the
    tangent touches F between the vertex and the next grid point (tests/test_vcsgc.py), as the
    semi-grand bracket of :func:`composition_at_dmu`."""
    k = int(np.argmin(np.abs(x - binodal)))
    return (float(x[k - 1]) if k > 0 else 0.0), (float(x[k + 1]) if k < len(x) - 1 else 1.0)


def vcsgc_cross_check(free: pd.DataFrame, curves: pd.DataFrame, tol: float = 1e-4, sigmas: float = VCSGC_SIGMAS
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical F(x) against the VCSGC F(c) at every temperature of the VCSGC curves.

    ``free``: canonical free energies (temperature, concentration, free_energy_per_site and its
    ``_err``, n_sites); ``curves``: VCSGC F(c)/N up to a constant on the grid c = n / N
    (:func:`lattherm.mcmc.vcsgc.vcsgc_free_energy`: temperature, composition,
    free_energy_per_site and its ``_err``, n_sites), any number of temperatures, each also among
    the canonical ones.

    Free energies: at each canonical concentration on the VCSGC grid (the same cell: x N a
    whole number that the scan visited), the one constant removed is the error-weighted mean of
    F_canonical - F_vcsgc over those concentrations; no linear term is removed, so the slopes are
    compared too. Each point's difference is in its combined standard errors and in meV/site;
    ``consistent`` where within ``sigmas``.

    Binodals: the two-phase regions (:func:`two_phase_regions`, gaps above ``tol``) of the
    canonical grid and of the VCSGC F(c) on its grid, matched by overlap, with each common
    tangent's slope d(F/N)/dx (2 dmu at coexistence). A region's binodal lies between the grid
    neighbours of its hull vertex, on either grid (from 0 or to 1 past the grid's ends;
    :func:`_bracket`); ``agree`` where these brackets overlap at both ends. A region found by one
    route only, or overlapping several regions of the other, has NaN for the other.

    Returns (free-energy check, binodals), tidy, one row per (temperature, concentration) and
    per (temperature, region).
    """
    _require(free, ["temperature", "concentration", "free_energy_per_site", "free_energy_per_site_err"],
             "canonical free-energy")
    _require(curves, VCSGC_CURVE_COLUMNS, "VCSGC free-energy")
    checks, binodals = [], []
    for temperature, curve in curves.groupby("temperature", sort=True):
        canonical = free[np.isclose(free.temperature.astype(float), temperature, rtol=1e-12)]
        if canonical.empty:
            raise PhaseDiagramError(f"VCSGC scan at T = {temperature:g} K: no canonical free energy at that "
                                    f"temperature (canonical: {sorted(set(free.temperature))})")
        canonical = canonical.sort_values("concentration")
        curve = curve.sort_values("composition")
        if len(curve) < 2:
            raise PhaseDiagramError(f"VCSGC F(c) at T = {temperature:g} K has {len(curve)} composition(s); "
                                    "the check needs at least two")
        n_sites = int(curve.n_sites.iloc[0])
        c, f_v = curve.composition.to_numpy(float), curve.free_energy_per_site.to_numpy(float)
        n_canonical = canonical.concentration.to_numpy(float) * n_sites
        on_grid = np.isclose(n_canonical, np.rint(n_canonical), atol=1e-6) & np.isin(np.rint(n_canonical),
                                                                                     np.rint(c * n_sites))
        inside = canonical[on_grid]
        x = inside.concentration.to_numpy(float)
        f_c, e_c = inside.free_energy_per_site.to_numpy(float), inside.free_energy_per_site_err.to_numpy(float)
        k = np.searchsorted(np.rint(c * n_sites), np.rint(x * n_sites))
        f_i, e_i = f_v[k], curve.free_energy_per_site_err.to_numpy(float)[k]
        error = np.hypot(e_c, e_i)
        weights = 1.0 / np.maximum(error, 1e-300) ** 2
        offset = np.sum(weights * (f_c - f_i)) / np.sum(weights) if len(x) else 0.0
        difference = f_c - offset - f_i
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(error > 0, difference / error, np.where(difference == 0, 0.0, np.inf))
        checks.append(pd.DataFrame({
            "temperature": float(temperature), "concentration": x, "free_energy_canonical": f_c - offset,
            "free_energy_canonical_err": e_c, "free_energy_vcsgc": f_i, "free_energy_vcsgc_err": e_i,
            "difference": difference, "difference_err": error, "difference_sigmas": z,
            "difference_mev": 1e3 * difference, "consistent": np.abs(z) <= sigmas, "n_sites": n_sites}))
        x_all, f_all = canonical.concentration.to_numpy(float), canonical.free_energy_per_site.to_numpy(float)
        regions = {"canonical": two_phase_regions(x_all, f_all, tol), "vcsgc": two_phase_regions(c, f_v, tol)}
        grids = {"canonical": (x_all, f_all), "vcsgc": (c, f_v)}
        matched = set()
        for left_v, right_v in regions["vcsgc"]:
            overlap = [r for r in regions["canonical"] if r[0] < right_v and r[1] > left_v]
            pair = {"vcsgc": (left_v, right_v), "canonical": overlap[0] if len(overlap) == 1 else None}
            if pair["canonical"] is not None:
                matched.add(pair["canonical"])
            binodals.append(_binodal_row(temperature, pair, grids, n_sites))
        for region in regions["canonical"]:
            if region not in matched:
                binodals.append(_binodal_row(temperature, {"canonical": region, "vcsgc": None}, grids, n_sites))
    check = (pd.concat(checks, ignore_index=True) if checks else pd.DataFrame(columns=VCSGC_CHECK_COLUMNS))
    binodal = pd.DataFrame(binodals, columns=VCSGC_BINODAL_COLUMNS)
    return check[VCSGC_CHECK_COLUMNS], binodal.sort_values(["temperature", "x_left_canonical", "x_left_vcsgc"],
                                                           ignore_index=True)


def _binodal_row(temperature: float, pair: dict, grids: dict, n_sites: int) -> dict:
    row = {"temperature": float(temperature), "n_sites": n_sites}
    brackets = {}
    for source, region in pair.items():
        x, f = grids[source]
        if region is None:
            row.update({f"x_left_{source}": np.nan, f"x_right_{source}": np.nan, f"slope_{source}": np.nan})
            continue
        row.update({f"x_left_{source}": region[0], f"x_right_{source}": region[1],
                    f"slope_{source}": _edge_slope(x, f, *region)})
        brackets[source] = (_bracket(x, region[0]), _bracket(x, region[1]))
    row["agree"] = len(brackets) == 2 and all(
        a[0] <= b[1] + 1e-12 and b[0] <= a[1] + 1e-12 for a, b in zip(brackets["canonical"], brackets["vcsgc"]))
    return row


def phase_labels(free: pd.DataFrame, boundaries: pd.DataFrame) -> pd.DataFrame:
    """The phase at every (concentration, temperature) of canonical scans, from their order
    parameters (:func:`lattherm.phases.phase_label`); a point strictly inside a two-phase region
    of ``boundaries`` at its temperature is labelled ``two-phase``. One row per point and
    direction (``cooling`` where the table has none)."""
    from lattherm.phases import phase_label

    _require(free, ["temperature", "concentration", "order_l12", "order_l10"], "canonical scan")
    table = free.assign(direction=free["direction"] if "direction" in free.columns else "cooling")
    rows = []
    for _, row in table.iterrows():
        label = phase_label(row.order_l12, row.order_l10, row.concentration)
        inside = boundaries[(boundaries.temperature == row.temperature) & (boundaries.x_left < row.concentration - 1e-9)
                            & (boundaries.x_right > row.concentration + 1e-9)]
        rows.append({"concentration": row.concentration, "temperature": row.temperature, "direction": row.direction,
                     "order_l12": row.order_l12, "order_l10": row.order_l10,
                     "heat_capacity_per_site": row.get("heat_capacity_per_site", np.nan),
                     "phase": "two-phase" if len(inside) and row.direction == "cooling" else label})
    return pd.DataFrame(rows)


def transition_brackets(phases: pd.DataFrame) -> pd.DataFrame:
    """Order-disorder temperatures of the ordered compositions, bracketed by hysteresis.

    A first-order transition supercools and superheats, so the highest temperature at which
    the cooling scan (from random) is ordered is a lower bound, and the lowest temperature at
    which the heating scan (from the perfect phase) is disordered an upper bound, on T_c (up to
    the grid spacing). NaN where a scan stays on one side of the transition over the grid.
    """
    rows = []
    for x, group in phases[phases.direction == "heating"].groupby("concentration", sort=True):
        heating = group.sort_values("temperature")
        cooling = phases[(phases.direction == "cooling") & (np.isclose(phases.concentration, x))]
        cooling = cooling[np.isfinite(cooling.temperature)].sort_values("temperature")
        phase = heating.phase.iloc[0]
        ordered_cooling = cooling[cooling.phase == phase].temperature
        disordered_heating = heating[heating.phase != phase].temperature
        rows.append({"concentration": float(x), "phase": phase,
                     "t_low": float(ordered_cooling.max()) if len(ordered_cooling) else np.nan,
                     "t_high": float(disordered_heating.min()) if len(disordered_heating) else np.nan})
    return pd.DataFrame(rows, columns=["concentration", "phase", "t_low", "t_high"]).astype(
        {"concentration": float, "t_low": float, "t_high": float})  # typed when empty (no heating scans)


def phase_diagram_tables(tables: list[pd.DataFrame], tolerance: float = 1e-4, names: list[str] | None = None
                         ) -> dict[str, pd.DataFrame]:
    """The phase diagram's tables from scans that name their point: canonical cooling
    free-energy tables (a ``concentration`` column and free energies), canonical heating scans
    (``direction`` heating), semi-grand scans (a ``dmu`` column), free-energy crossings (a
    ``t_c`` column, :func:`lattherm.mcmc.coexistence.crossing`) and the composition histograms of
    VCSGC phi scans (a ``phi`` column; :func:`lattherm.mcmc.vcsgc.vcsgc_scan`); ``names`` (the
    files) name them in errors. Returns boundaries (two-phase regions
    per T), phases (label per point), transitions (per ordered composition: T_c brackets, the
    crossing's T_c with its errors, C_v peaks), semi_grand (x(dmu) of each direction, MC against
    the prediction from F(x, T) and its bracket), hysteresis (:func:`hysteresis_windows`) and
    vcsgc_check, vcsgc_binodals (:func:`vcsgc_cross_check`)."""
    from lattherm.mcmc.vcsgc import HISTOGRAM_COLUMNS, vcsgc_free_energy

    crossings = [t for t in tables if "t_c" in t.columns]
    vcsgc = [(t, "VCSGC histograms" if names is None else names[k]) for k, t in enumerate(tables)
             if "phi" in t.columns]
    if names is not None:
        names = [n for n, t in zip(names, tables) if "t_c" not in t.columns and "phi" not in t.columns]
    tables = [t for t in tables if "t_c" not in t.columns and "phi" not in t.columns]
    heating = [t for t in tables if "direction" in t.columns and (t.direction == "heating").all()]
    canonical = [t for t in tables if "concentration" in t.columns and not any(t is h for h in heating)]
    semi_grand = [t for t in tables if "dmu" in t.columns and "concentration" not in t.columns]
    if not canonical:
        raise PhaseDiagramError("no canonical free-energy table (with a concentration column) among the inputs")
    for k, t in enumerate(tables):
        name = "" if names is None else f"{names[k]}: "
        if any(t is h for h in heating):
            _require(t, ["temperature", "concentration", "order_l12", "order_l10"], f"{name}heating")
        elif "concentration" in t.columns:
            _require(t, ["temperature", "free_energy_per_site", "free_energy_per_site_err", "heat_capacity_per_site"], f"{name}canonical")
        elif "dmu" in t.columns:
            _require(t, ["temperature", "direction", "composition", "composition_err", "n_sites"],
                     f"{name}semi-grand")
    free = pd.concat(canonical, ignore_index=True)
    scans = (pd.concat(semi_grand, ignore_index=True) if semi_grand else
             pd.DataFrame(columns=["temperature", "dmu", "direction", "composition", "composition_err", "n_sites"]))
    check = pd.DataFrame({"temperature": scans.temperature.astype(float), "dmu": scans.dmu.astype(float),
                          "direction": scans.direction, "concentration_mc": scans.composition.astype(float),
                          "concentration_mc_err": scans.composition_err.astype(float)})
    predicted = semi_grand_compositions(free, sorted(set(check["dmu"])))
    predicted = predicted.rename(columns={"concentration": "concentration_predicted"})
    # Compare only at temperatures both scans share (exact float match: both come from one config).
    check = check.merge(predicted, on=["temperature", "dmu"], how="inner")
    margin = 3.0 * check.concentration_mc_err
    check["within_bracket"] = ((check.concentration_mc >= check.concentration_low - margin)
                               & (check.concentration_mc <= check.concentration_high + margin))
    boundaries = phase_boundaries(free, tol=tolerance)
    phases = phase_labels(pd.concat([free, *heating], ignore_index=True), boundaries)
    transitions = transition_brackets(phases).merge(
        order_disorder_temperatures(free).rename(columns={"temperature": "t_cv_peak"}), on="concentration", how="left")
    crossing_columns = ["concentration", "t_c", "t_c_err", "t_c_extrapolation", "latent_heat_per_site"]
    for t in crossings:
        _require(t, crossing_columns, "crossing")
    found = (pd.concat(crossings, ignore_index=True)[crossing_columns] if crossings
             else pd.DataFrame(columns=crossing_columns, dtype=float))
    transitions = transitions.merge(found, on="concentration", how="left")
    for table, name in vcsgc:
        _require(table, list(HISTOGRAM_COLUMNS), f"{name}: VCSGC histograms")
    curves = [vcsgc_free_energy(h, f"{name} at T = {t:g} K") for table, name in vcsgc
              for t, h in table.groupby("temperature", sort=True)]
    curves = (pd.concat(curves, ignore_index=True) if curves
              else pd.DataFrame(columns=VCSGC_CURVE_COLUMNS).astype({"temperature": float}))
    vcsgc_check, vcsgc_binodals = vcsgc_cross_check(free, curves, tol=tolerance)
    return {"boundaries": boundaries, "phases": phases, "transitions": transitions, "semi_grand": check,
            "hysteresis": hysteresis_windows(scans), "vcsgc_check": vcsgc_check, "vcsgc_binodals": vcsgc_binodals}
