"""Tidy-table comparisons and the workflow's figures.

Every figure function takes pandas tables and returns a matplotlib ``Figure``; the CLI saves it
with :func:`lattherm.io.save_figure`. Column conventions are those of the exact and MCMC tables:
``temperature``, ``free_energy_per_site``, ``heat_capacity_per_site``, ``ess`` (per sample),
``abs_magnetization`` (spin models) or ``order_parameter`` (FCC sublattice order).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (also on headless cluster nodes)
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from lattherm.errors import LatthermError

ORDER_PARAMETERS = {"order_parameter": "sublattice order η", "abs_magnetization": "|m|"}
"""Order-parameter columns, in the order they are looked for, with their axis labels."""


class TableError(LatthermError):
    """A table lacks a column the analysis needs, or two tables do not line up."""


def require_columns(table: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TableError(f"{what} lacks column(s) {missing}; it has {list(table.columns)}")


def n_sites_of(table: pd.DataFrame, what: str) -> int:
    """Number of sites of the cell a table describes: its ``n_sites`` column, else F / f."""
    if "n_sites" in table.columns:
        values = table["n_sites"].unique()
    else:
        require_columns(table, ["free_energy", "free_energy_per_site"], what)
        values = np.unique(np.round(table["free_energy"] / table["free_energy_per_site"]).astype(int))
    if len(values) != 1:
        raise TableError(f"{what} mixes cells with {sorted(values)} sites")
    return int(values[0])


EXACT_METHODS = ("kaufman", "enumeration")


def compare_free_energies(tables: list[pd.DataFrame], names: list[str] | None = None) -> pd.DataFrame:
    """Free-energy errors of estimates against exact references at equal cell size and temperature.

    Every table names what it holds in its ``system``, ``method`` and ``size`` columns (as the
    stage commands write them); tables whose method is one of :data:`EXACT_METHODS` are the
    references, the others estimates. Sizes without a reference keep NaN errors (e.g. MCMC on a
    cell too large to enumerate).

    Returns:
        Tidy table: system, method, size, n_sites, temperature, free_energy_per_site,
        free_energy_per_site_err (the estimate's own error bar), reference_free_energy_per_site,
        error_per_site (estimate - exact), error_sigmas (error_per_site in error bars), ess (NaN
        where absent).
    """
    for k, table in enumerate(tables):
        require_columns(table, ["system", "method", "size", "temperature", "free_energy_per_site"],
                        f"table {k if names is None else names[k]}")
    tables = [group for table in tables for _, group in table.groupby(["system", "method", "size"], sort=False)]
    references = {(t["system"].iloc[0], t["size"].iloc[0]): t for t in tables if t["method"].iloc[0] in EXACT_METHODS}
    rows = []
    for table in tables:
        system, method, size = (table[c].iloc[0] for c in ("system", "method", "size"))
        if method in EXACT_METHODS:
            continue
        what = f"{method} table of {system} on {size}"
        frame = pd.DataFrame(
            {
                "system": system,
                "method": method,
                "size": size,
                "n_sites": n_sites_of(table, what),
                "temperature": table["temperature"].to_numpy(float),
                "free_energy_per_site": table["free_energy_per_site"].to_numpy(float),
                "free_energy_per_site_err": (table["free_energy_per_site_err"].to_numpy(float)
                                             if "free_energy_per_site_err" in table.columns else np.nan),
                "ess": table["ess"].to_numpy(float) if "ess" in table.columns else np.nan,
            }
        )
        frame["reference_free_energy_per_site"] = np.nan
        if (system, size) in references:
            reference = references[(system, size)]
            frame["reference_free_energy_per_site"] = _match_temperatures(frame["temperature"], reference, what)
        rows.append(frame)
    if not rows:
        raise TableError("no estimate tables to compare")
    result = pd.concat(rows, ignore_index=True)
    result["error_per_site"] = result["free_energy_per_site"] - result["reference_free_energy_per_site"]
    result["error_sigmas"] = result["error_per_site"] / result["free_energy_per_site_err"]
    return result


def _match_temperatures(temperatures: pd.Series, reference: pd.DataFrame, what: str) -> np.ndarray:
    """Reference f at each temperature (relative match 1e-9, since values pass through text)."""
    require_columns(reference, ["temperature", "free_energy_per_site"], "reference table")
    ref_t = reference["temperature"].to_numpy(float)
    ref_f = reference["free_energy_per_site"].to_numpy(float)
    out = np.empty(len(temperatures))
    for k, t in enumerate(temperatures):
        hit = np.flatnonzero(np.isclose(ref_t, t, rtol=1e-9, atol=0.0))
        if len(hit) == 0:
            raise TableError(f"{what}: the reference has no temperature {t}; it has {sorted(ref_t)}")
        out[k] = ref_f[hit[0]]
    return out


# -- figures ------------------------------------------------------------------------------
def _panels(n: int, rows: int = 1, size: tuple[float, float] = (4.2, 3.2)):
    fig, axes = plt.subplots(rows, n, figsize=(size[0] * n, size[1] * rows), squeeze=False)
    return fig, axes


def _system_panels(comparison: pd.DataFrame, columns: list[str], value: str, empty: str):
    """A figure with one panel per system of the rows of ``comparison`` that have ``value``:
    (fig, [(ax, system, rows)])."""
    require_columns(comparison, ["system", *columns, value], "comparison")
    data = comparison.dropna(subset=[value])
    if data.empty:
        raise TableError(empty)
    systems = list(dict.fromkeys(data["system"]))
    fig, axes = _panels(len(systems))
    return fig, [(ax, system, data[data["system"] == system]) for ax, system in zip(axes[0], systems)]


def _label(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)


def free_energy_error_figure(comparison: pd.DataFrame):
    """|f - f_exact| per site versus temperature, one panel per system, a line per method and cell,
    its own one-sigma error bar dotted in the same colour."""
    fig, panels = _system_panels(comparison, ["method", "size", "temperature"], "error_per_site",
                                 "comparison has no estimate with an exact reference")
    for ax, system, data in panels:
        for (method, size), group in data.groupby(["method", "size"], sort=True):
            group = group.sort_values("temperature")
            # Errors can be exactly zero (enumeration vs Kaufman up to rounding): floor for log axes.
            err = np.maximum(np.abs(group["error_per_site"]), 1e-16)
            line, = ax.plot(group["temperature"], err, marker="o", label=f"{method} ({size})")
            if "free_energy_per_site_err" in group.columns and group["free_energy_per_site_err"].notna().any():
                ax.plot(group["temperature"], group["free_energy_per_site_err"], ls=":", color=line.get_color())
        ax.set_yscale("log")
        _label(ax, "temperature", "|f - f_exact| per site (dotted: 1 sigma)", system)
    fig.tight_layout()
    return fig


def thermodynamics_figure(tables: list[pd.DataFrame]):
    """Heat capacity per site and order parameter versus temperature, one column per system
    (tables named by their ``system`` column, cell by ``size``)."""
    fig, axes = _panels(len(tables), rows=2)
    for col, table in enumerate(tables):
        require_columns(table, ["system", "size"], f"table {col}")
        system = f"{table['system'].iloc[0]} ({table['size'].iloc[0]})"
        require_columns(table, ["temperature", "heat_capacity_per_site"], f"{system} table")
        order = next((c for c in ORDER_PARAMETERS if c in table.columns), None)
        if order is None:
            raise TableError(f"{system} table has no order-parameter column; expected one of {list(ORDER_PARAMETERS)}")
        table = table.sort_values("temperature")
        c_err = table.get("heat_capacity_per_site_err")
        axes[0, col].errorbar(table["temperature"], table["heat_capacity_per_site"], yerr=c_err, marker="o", ms=3)
        axes[0, col].set_ylabel("C_v per site")
        axes[0, col].set_title(system)
        axes[1, col].errorbar(table["temperature"], table[order], yerr=table.get(f"{order}_err"), marker="o", ms=3)
        axes[1, col].set_ylabel(ORDER_PARAMETERS[order])
        for ax in axes[:, col]:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("temperature")
    fig.tight_layout()
    return fig


def ess_figure(comparison: pd.DataFrame):
    """ESS per sample versus number of sites, one panel per system, a line per method and T."""
    fig, panels = _system_panels(comparison, ["method", "n_sites", "temperature"], "ess",
                                 "comparison has no ESS values (no neural estimates)")
    for ax, system, data in panels:
        for (method, temperature), group in data.groupby(["method", "temperature"]):
            group = group.sort_values("n_sites")
            ax.plot(group["n_sites"], group["ess"], marker="o", label=f"{method}, T = {temperature:g}")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1.05)
        _label(ax, "sites N", "ESS per sample", system)
    fig.tight_layout()
    return fig


PHASE_COLOURS = {"A1": "0.6", "L1_2 A3B": "C0", "L1_0 AB": "C3", "L1_2 AB3": "C2", "two-phase": "k"}


def phase_diagram_figure(boundaries: pd.DataFrame, phases: pd.DataFrame, transitions: pd.DataFrame,
                         semi_grand: pd.DataFrame, hysteresis: pd.DataFrame, cell: str = "",
                         vcsgc: pd.DataFrame | None = None, vcsgc_check: pd.DataFrame | None = None,
                         vcsgc_binodals: pd.DataFrame | None = None):
    """Top left: the T-x diagram: the phase of every scanned point (canonical scans), two-phase
    regions shaded, T_c brackets (cooling / heating) of the ordered compositions, where the
    transitions table has them the free-energy crossings' T_c with error bars, and the binodals
    of the VCSGC F(c). Top right: order parameters and C_v against T at the ordered
    compositions, cooling and heating. Bottom left: the semi-grand x(dmu) scans up and down with
    error bars against the prediction from F(x, T) (line) and its bracket (band), hysteresis
    windows marked. Bottom right: d(F/N)/dc of the VCSGC scans (``vcsgc``) with error bars
    against the canonical chord slopes between neighbouring concentrations (``vcsgc_check``),
    the common tangents of the VCSGC F(c) dashed (``vcsgc_binodals``)."""
    require_columns(boundaries, ["temperature", "x_left", "x_right"], "phase boundaries")
    require_columns(phases, ["concentration", "temperature", "direction", "phase", "order_l12", "order_l10"], "phases")
    require_columns(transitions, ["concentration", "phase", "t_low", "t_high"], "transitions")
    require_columns(semi_grand, ["temperature", "dmu", "direction", "concentration_mc", "concentration_mc_err",
                                 "concentration_predicted", "concentration_low", "concentration_high"], "semi-grand check")
    require_columns(hysteresis, ["temperature", "dmu_low", "dmu_high"], "hysteresis")
    vcsgc = pd.DataFrame(columns=["temperature"]) if vcsgc is None else vcsgc
    vcsgc_check = pd.DataFrame(columns=["temperature"]) if vcsgc_check is None else vcsgc_check
    vcsgc_binodals = pd.DataFrame(columns=["temperature"]) if vcsgc_binodals is None else vcsgc_binodals
    if len(vcsgc):
        require_columns(vcsgc, ["temperature", "composition", "interior", "free_energy_derivative_per_site",
                                "free_energy_derivative_per_site_err", "kappa"], "VCSGC scan")
        require_columns(vcsgc_check, ["temperature", "concentration", "free_energy_canonical",
                                      "free_energy_canonical_err"], "VCSGC check")
        require_columns(vcsgc_binodals, ["temperature", "x_left_vcsgc", "x_right_vcsgc", "slope_vcsgc"],
                        "VCSGC binodals")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.4))
    (diagram, order), (check, slopes) = axes
    # show the physical range: up to twice the highest ordered temperature (the scans' highest
    # temperatures only link T = inf to it)
    ordered = phases[phases.phase != "A1"].temperature
    t_max = 2 * ordered.max() if len(ordered) else phases.temperature.max()
    phases = phases[phases.temperature <= t_max]
    boundaries = boundaries[boundaries.temperature <= t_max]
    # each two-phase edge as a band from halfway to the grid temperature below to halfway to the
    # one above, so that bands of neighbouring temperatures meet on an uneven grid
    temperatures = np.sort(phases.temperature.unique())
    half = np.diff(temperatures) / 2 if len(temperatures) > 1 else np.array([25.0])
    below = dict(zip(temperatures, np.concatenate([half[:1], half])))
    above = dict(zip(temperatures, np.concatenate([half, half[-1:]])))
    for _, row in boundaries.iterrows():
        diagram.fill_between([row.x_left, row.x_right], row.temperature - below[row.temperature],
                             row.temperature + above[row.temperature], color="0.85", lw=0)
    cooling = phases[phases.direction == "cooling"]
    for phase, group in cooling.groupby("phase"):
        diagram.plot(group.concentration, group.temperature, "o" if phase != "two-phase" else "x", ms=5,
                     color=PHASE_COLOURS.get(phase, "C4"), label=phase)
        if phase not in ("two-phase", "A1"):
            diagram.annotate(phase, (group.concentration.mean(), group.temperature.min()), fontsize=8,
                             ha="center", va="top", xytext=(0, -4), textcoords="offset points",
                             color=PHASE_COLOURS.get(phase, "C4"), weight="bold")
    diagram.annotate("A1 (disordered)", (0.5, t_max), ha="center", va="top", fontsize=8, color="0.4", weight="bold")
    for _, row in transitions.iterrows():
        low, high = row.t_low, row.t_high
        if np.isfinite(low) or np.isfinite(high):
            mid = np.nanmean([low, high])
            diagram.errorbar([row.concentration], [mid], yerr=[[mid - (low if np.isfinite(low) else mid)],
                                                                [(high if np.isfinite(high) else mid) - mid]],
                             color="k", capsize=4, lw=1.5)
    diagram.errorbar([], [], yerr=[], color="k", capsize=4, label="T_c bracket (cooling / heating)")
    if "t_c" in transitions.columns:
        found = transitions[np.isfinite(transitions.t_c.astype(float))]
        diagram.errorbar(found.concentration, found.t_c, yerr=np.hypot(found.t_c_err, found.t_c_extrapolation),
                         fmt="D", ms=5, color="C1", capsize=3, label="T_c: F(ordered) = F(A1)")
    binodals = vcsgc_binodals.dropna(subset=["x_left_vcsgc"]) if len(vcsgc_binodals) else vcsgc_binodals
    for k, row in enumerate(binodals.itertuples()):
        diagram.plot([row.x_left_vcsgc, row.x_right_vcsgc], [row.temperature] * 2, ls="none", marker="D", ms=4,
                     mfc="none", color="C6", label="binodals of the VCSGC F(c)" if k == 0 else None)
    diagram.set_xlim(0, 1)
    diagram.set_xlabel("x (Au)")
    diagram.set_ylabel("T (K)")
    diagram.set_title(f"CuAu phase diagram{', ' + cell if cell else ''}", fontsize=9)
    diagram.legend(fontsize=6, loc="upper right")
    heat = order.twinx()
    for k, (x, group) in enumerate(phases[phases.concentration.isin(transitions.concentration)].groupby("concentration")):
        column = "order_l10" if abs(x - 0.5) < 1e-9 else "order_l12"
        for direction, style in (("cooling", "-"), ("heating", "--")):
            part = group[group.direction == direction].sort_values("temperature")
            order.plot(part.temperature, part[column], style, marker="o", ms=3, color=f"C{k}",
                       label=f"x = {x:g} {column}, {direction}")
        part = group[group.direction == "cooling"].sort_values("temperature")
        heat.plot(part.temperature, part.heat_capacity_per_site, ":", color=f"C{k}")
    order.set_xlabel("T (K)")
    order.set_ylabel("order parameter (1: perfect)")
    heat.set_ylabel("C_v per site, cooling (dotted)")
    order.legend(fontsize=6)
    for k, (temperature, group) in enumerate(semi_grand.groupby("temperature")):
        colour = f"C{k % 10}"
        for direction, marker in (("up", "^"), ("down", "v")):
            part = group[group.direction == direction].sort_values("dmu")
            check.errorbar(part["dmu"], part["concentration_mc"], yerr=part["concentration_mc_err"], fmt=marker,
                           ms=3, color=colour, mfc=colour if direction == "up" else "none", lw=0.8,
                           label=f"T = {temperature:g} K" if direction == "up" else None)
        line = group[group.direction == group.direction.iloc[0]].sort_values("dmu")
        check.plot(line["dmu"], line["concentration_predicted"], "-", color=colour, lw=0.8)
        check.fill_between(line["dmu"], line["concentration_low"], line["concentration_high"], color=colour,
                           alpha=0.08, lw=0, step="mid")
        for window in hysteresis[hysteresis.temperature == temperature].itertuples():
            check.axvspan(window.dmu_low, window.dmu_high, ymin=0.02 * k, ymax=0.02 * (k + 1), color=colour)
    check.set_xlabel("Δμ (eV)")
    check.set_ylabel("x (Au)")
    check.set_title("semi-grand x(Δμ): ▲ up, ▽ down; F(x, T) line and bracket;\nbars at the bottom: hysteresis",
                    fontsize=8)
    check.legend(fontsize=6)
    _vcsgc_slope_panel(slopes, vcsgc, vcsgc_check, vcsgc_binodals, cell)
    fig.tight_layout()
    return fig


def _vcsgc_slope_panel(ax, vcsgc: pd.DataFrame, check: pd.DataFrame, binodals: pd.DataFrame, cell: str) -> None:
    """d(F/N)/dc against c at each VCSGC temperature: the VCSGC points, the canonical chord
    slopes (F(x_i+1) - F(x_i)) / (x_i+1 - x_i) over their intervals, the VCSGC common tangents."""
    if not len(vcsgc):
        ax.text(0.5, 0.5, "no VCSGC scans\n(phase_diagram.vcsgc_temperatures is empty)", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
        return
    for k, (temperature, scan) in enumerate(vcsgc.groupby("temperature")):
        colour = f"C{k % 10}"
        scan = scan[scan.interior.astype(bool)].sort_values("composition")
        ax.errorbar(scan.composition, scan.free_energy_derivative_per_site,
                    yerr=scan.free_energy_derivative_per_site_err, fmt="o", ms=3, color=colour, lw=0.8,
                    label=f"VCSGC, T = {temperature:g} K (κ = {scan.kappa.iloc[0]:g})")
        canonical = check[np.isclose(check.temperature.astype(float), temperature)].sort_values("concentration")
        x, f, e = (canonical[c].to_numpy(float) for c in ("concentration", "free_energy_canonical",
                                                           "free_energy_canonical_err"))
        if len(x) > 1:
            ax.errorbar(0.5 * (x[1:] + x[:-1]), np.diff(f) / np.diff(x), xerr=0.5 * np.diff(x),
                        yerr=np.hypot(e[1:], e[:-1]) / np.diff(x), fmt="none", color=colour, lw=2.0, alpha=0.5,
                        label=f"canonical chord slopes, T = {temperature:g} K")
        for row in binodals[np.isclose(binodals.temperature.astype(float), temperature)].dropna(
                subset=["x_left_vcsgc"]).itertuples():
            ax.plot([row.x_left_vcsgc, row.x_right_vcsgc], [row.slope_vcsgc] * 2, "--", color=colour, lw=0.8)
    ax.set_xlabel("c = x (Au)")
    ax.set_ylabel("d(F/N)/dc (eV/site)")
    ax.set_title(f"VCSGC d(F/N)/dc vs canonical chord slopes{', ' + cell if cell else ''};\n"
                 "dashed: common tangents of the VCSGC F(c)", fontsize=8)
    ax.legend(fontsize=6)


def snapshot_figure(snapshots: list[tuple[str, object, np.ndarray]]):
    """Configurations, one panel per (title, lattice, x) with x of shape (N,) in {0, 1}.

    Square lattices are drawn as images; 3D cells as site scatter plots of the x-y projection,
    one panel per z layer, so every site is visible.
    """
    panels = []
    for title, lattice, x in snapshots:
        x = np.asarray(x)
        if x.shape != (lattice.n_sites,):
            raise TableError(f"snapshot {title!r} has shape {x.shape}; the lattice has {lattice.n_sites} sites")
        z = np.round(lattice.positions[:, 2], 6)
        layers = [np.flatnonzero(z == level) for level in np.unique(z)]
        panels += [(title if k == 0 else "", lattice, x, layer, len(layers)) for k, layer in enumerate(layers)]
    fig, axes = _panels(len(panels), size=(2.6, 2.6))
    for ax, (title, lattice, x, layer, n_layers) in zip(axes[0], panels):
        if lattice.kind == "square":
            L1, L2 = lattice.repeats[:2]
            ax.imshow(x.reshape(L1, L2), cmap="gray_r", vmin=0, vmax=1)
        else:
            pos = lattice.positions[layer]
            ax.scatter(pos[:, 0], pos[:, 1], c=x[layer], cmap="gray_r", vmin=0, vmax=1, edgecolors="k", s=60)
            ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
