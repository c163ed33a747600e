"""Disorder averages of a spin-glass family (one system block, several coupling draws) and its figure.

A family's tables are those of its samples (systems ``NAME_seedS``) on the training cell: exact
references and MCMC free energies, neural estimates (thermodynamics), and P(q) tables (exact,
parallel tempering, neural; they have a ``q`` column). Each quantity is reported per sample and
as the mean over samples (``sample`` = ``mean``) with the sample-to-sample standard error
std / sqrt(n) (for a single sample: its own statistical error, where its table has one).

For a Gaussian family, :func:`link_overlap_identity` checks parallel tempering's equilibration
on the disorder average: [<E>] / N_b = -beta sigma^2 (1 - [<q_l>]) holds only in equilibrium.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import ticker
from scipy import stats

from lattherm.analysis.figures import TableError, _label, _panels, require_columns

QUANTITIES = ("free_energy_per_site", "energy_per_site", "heat_capacity_per_site")
QUANTITY_LABELS = {"free_energy_per_site": "F / N", "energy_per_site": "E / N", "heat_capacity_per_site": "C / N"}
MEAN = "mean"
IDENTITY_SIGMAS = 3.0
"""The identity check passes where its two sides are within this many sample-to-sample sigmas, as
a Student-t tail of n - 1 degrees of freedom for n samples: p >= 2 Phi(-3) = 0.0027."""
IDENTITY_VALUES = ("energy_per_bond", "link_overlap", "link_energy_per_bond", "difference")
IDENTITY_SIDES = {"energy_per_bond": "[<E>] / N_b", "link_energy_per_bond": "-beta sigma^2 (1 - [<q_l>])"}


def _sample_mean(table: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """Mean over ``sample`` of each value per ``keys``, with std / sqrt(n) in ``{value}_err``; of a
    single sample, its own statistical error where its table has one."""
    grouped = table.groupby(keys, sort=True)
    mean, count = grouped[values].mean(), grouped[values].count()
    error = grouped[values].std(ddof=1) / np.sqrt(count)
    own = [v for v in values if f"{v}_err" in table.columns]
    if own:
        single = grouped[[f"{v}_err" for v in own]].first().set_axis(own, axis=1).reindex(columns=values)
        error = error.where(count > 1, single)
    result = mean.join(error.add_suffix("_err")).reset_index()
    result.insert(0, "sample", MEAN)
    result["n_samples"] = grouped.size().to_numpy()
    return result


def disorder_average(tables: list[pd.DataFrame], family: str,
                     sources: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(thermodynamics, overlaps) of a family: per-sample rows, then the sample means.

    Thermodynamics: family, sample, method, size, temperature, F / N, E / N, C / N (and the
    errors each table has; a quantity no table has is NaN). Overlaps: family, sample, method, size,
    temperature, q, probability, chi_sg. Cells of different sizes are never averaged together."""
    sources = sources or [f"table {i}" for i in range(len(tables))]
    thermo, overlaps = [], []
    for table, source in zip(tables, sources):
        require_columns(table, ["system", "method", "size", "temperature"], source)
        if "q" in table.columns:
            require_columns(table, ["probability"], source)
            part = table[["system", "method", "size", "temperature", "q", "probability"]
                         + (["probability_err"] if "probability_err" in table.columns else [])].copy()
            n_sites = len(np.unique(table.q)) - 1  # q = 1 - 2 d / N, d = 0..N
            part["chi_sg"] = n_sites * (part.q**2 * part.probability).groupby(
                [part.method, part.temperature]).transform("sum")
            overlaps.append(part)
        else:
            present = [c for c in QUANTITIES if c in table.columns]
            if not present:
                raise TableError(f"{source} has neither a q column (P(q)) nor any of {list(QUANTITIES)}")
            columns = present + [f"{c}_err" for c in present if f"{c}_err" in table.columns]
            thermo.append(table[["system", "method", "size", "temperature", *columns]])
    if not thermo:
        raise TableError(f"family {family!r}: no thermodynamics tables among {sources}")

    def finish(parts: list[pd.DataFrame], keys: list[str], values: list[str]) -> pd.DataFrame:
        per_sample = pd.concat(parts, ignore_index=True).rename(columns={"system": "sample"})
        per_sample = per_sample.reindex(columns=[*per_sample.columns, *(v for v in values if v not in per_sample)])
        per_sample["size"] = per_sample["size"].astype(str)
        result = pd.concat([per_sample, _sample_mean(per_sample, keys, values)], ignore_index=True)
        result.insert(0, "family", family)
        return result

    thermo_table = finish(thermo, ["method", "size", "temperature"], list(QUANTITIES))
    overlap_table = (finish(overlaps, ["method", "size", "temperature", "q"], ["probability", "chi_sg"]) if overlaps
                     else pd.DataFrame(columns=["family", "sample", "method", "size", "temperature", "q", "probability",
                                                "chi_sg"]))
    return thermo_table, overlap_table


def link_overlap_identity(summaries: list[pd.DataFrame], family: str, sources: list[str] | None = None,
                          sigmas: float = IDENTITY_SIGMAS) -> pd.DataFrame:
    """The energy / link-overlap identity of a Gaussian family, per temperature of its grid, from
    its samples' parallel-tempering summaries (:func:`lattherm.mcmc.samplers.overlap_tempering`).

    Rows per sample (the ingredients, with their blocking errors; the identity does not hold per
    sample, so no check), then per temperature the sample means (``sample`` = ``mean``) with
    sample-to-sample errors std / sqrt(n), per cell (``size``): ``energy_per_bond`` [<E>] / N_b,
    ``link_energy_per_bond`` -beta sigma^2 (1 - [<q_l>]), ``difference`` of the two (its error
    from the per-sample differences, which pairs the two sides of each sample), ``sigma`` =
    difference / its error, ``p_value`` its two-sided Student-t tail (n - 1 degrees of freedom:
    the error itself is estimated from n samples) and ``check``: ``pass`` where p is at least the
    Gaussian tail beyond ``sigmas``, else ``fail`` (energy above and link overlap below: not
    equilibrated), ``too few samples`` for one sample."""
    sources = sources or [f"table {i}" for i in range(len(summaries))]
    if not summaries:
        raise TableError(f"family {family!r}: the link-overlap identity needs the parallel-tempering summaries "
                         "(overlap_pt_*_summary.csv) of its samples; none given")
    parts = []
    for table, source in zip(summaries, sources):
        require_columns(table, ["system", "size", "temperature", "beta", "energy_per_bond", "link_energy_per_bond"],
                        source)
        if table["link_energy_per_bond"].isna().all():
            raise TableError(f"family {family!r}: the energy/link-overlap identity needs Gaussian couplings (no field), "
                             f"but sample {table.system.iloc[0]!r} ({source}) has none: its identity columns are empty "
                             "(+-J couplings, where J^2 is the same on every bond and Gaussian integration by parts "
                             "fails, or a field)")
        grid = table[table.on_grid.astype(bool)] if "on_grid" in table.columns else table  # tuned rungs differ per sample
        part = grid[["system", "size", "temperature", "beta", "energy_per_bond", "energy_per_bond_err", "link_overlap",
                     "link_overlap_err", "link_energy_per_bond", "link_energy_per_bond_err"]].copy()
        part["difference"] = part.energy_per_bond - part.link_energy_per_bond
        part["difference_err"] = np.hypot(part.energy_per_bond_err, part.link_energy_per_bond_err)
        parts.append(part)
    per_sample = pd.concat(parts, ignore_index=True).rename(columns={"system": "sample"})
    per_sample["size"] = per_sample["size"].astype(str)
    means = _sample_mean(per_sample, ["size", "temperature"], list(IDENTITY_VALUES))
    means.insert(3, "beta", per_sample.groupby(["size", "temperature"], sort=True).beta.first().to_numpy())
    enough = means.n_samples > 1
    means["sigma"] = (means.difference / means.difference_err).where(enough)
    means["p_value"] = 2.0 * stats.t.sf(means.sigma.abs(), (means.n_samples - 1).clip(lower=1))
    passed = means.p_value >= 2.0 * stats.norm.sf(sigmas)
    means["check"] = np.where(~enough, "too few samples", np.where(passed, "pass", "fail"))
    per_sample["n_samples"] = 1
    result = pd.concat([per_sample, means], ignore_index=True)
    result.insert(0, "family", family)
    return result


def overlap_panel_temperatures(overlaps: pd.DataFrame, count: int = 3) -> list[float]:
    """Up to ``count`` temperatures to show P(q) at: those with the most methods, lowest first."""
    means = overlaps[overlaps["sample"] == MEAN]
    methods = means.groupby("temperature").method.nunique()
    ranked = sorted(methods.index, key=lambda t: (-methods[t], t))
    return sorted(ranked[:count])


def _style(method: str, colours: dict[str, str]) -> dict:
    """Exact values as a line, estimates as points with error bars; one colour per method in
    every panel."""
    if method == "enumeration":
        return {"color": colours[method], "linestyle": "-", "marker": "none", "zorder": 3}
    return {"color": colours[method], "linestyle": "none", "marker": "o", "markersize": 3, "capsize": 2}


def _cell(size: str) -> str:
    """A cell for a title or label: '4x4 cell' on a lattice, 'N = 20' without one."""
    return f"{size} cell" if "x" in size else f"N = {size}"


def _cells(table: pd.DataFrame) -> str:
    """The cells of a table's rows, for a title."""
    return ", ".join(_cell(size) for size in sorted(set(table["size"].astype(str))))


def _curve(method: str, size, several: bool) -> str:
    """A curve's legend label: the method, and its cell where the figure has several."""
    return f"{method}, {_cell(str(size))}" if several else method


def _log_temperature_axis(ax) -> None:
    """A log T axis labelled at 1, 2, 5 per decade (a grid spans less than two decades: the
    default labels every minor tick there, and they overlap)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda t, _: f"{t:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _identity_panel(ax, identity: pd.DataFrame, family: str) -> None:
    """The two sides of the energy / link-overlap identity against T (sample means with
    sample-to-sample error bars), the temperatures whose check failed ringed in red."""
    means = identity[identity["sample"] == MEAN].sort_values("temperature")
    for i, (side, label) in enumerate(IDENTITY_SIDES.items()):
        ax.errorbar(means.temperature, means[side], yerr=means[f"{side}_err"].fillna(0), label=label, color=f"C{i}",
                    linestyle="none", marker="os"[i], markersize=3, capsize=2)
    failed = means[means.check == "fail"]
    if not failed.empty:  # ring both sides: they sit apart by more than the check allows
        ax.plot(np.repeat(failed.temperature.to_numpy(), 2), failed[list(IDENTITY_SIDES)].to_numpy().ravel(),
                linestyle="none", marker="o", markersize=9, markerfacecolor="none", color="red",
                label=f"check failed (> {IDENTITY_SIGMAS:g} sigma)")
    _log_temperature_axis(ax)
    n_samples = int(means.n_samples.max())
    passed = int((means.check == "pass").sum())
    _label(ax, "temperature", "energy per bond", f"{family}, {_cells(means)}: E / link-overlap identity\n"
           f"({n_samples} disorder sample{'s' * (n_samples != 1)}, {passed} of {len(means)} T pass)")


def spin_glass_figure(thermo: pd.DataFrame, overlaps: pd.DataFrame, identity: pd.DataFrame | None = None):
    """Top row: F, E, C per site against T (sample means, sample-to-sample error bars); bottom
    row: P(q) at up to three temperatures; one curve per method (exact, MCMC or parallel
    tempering, neural samplers). With a Gaussian family's :func:`link_overlap_identity` table, one
    more panel at the end of the bottom row: parallel tempering's equilibration check."""
    require_columns(thermo, ["family", "sample", "method", "size", "temperature", *QUANTITIES,
                             *(f"{quantity}_err" for quantity in QUANTITIES)], "thermodynamics table")
    require_columns(overlaps, ["sample", "method", "size", "temperature", "q", "probability", "probability_err"],
                    "overlap table")
    family = thermo.family.iloc[0]
    if identity is not None:
        require_columns(identity, ["family", "sample", "size", "temperature", "n_samples", "check",
                                   *(f"{side}{suffix}" for side in IDENTITY_SIDES for suffix in ("", "_err"))],
                        "identity table")
        if set(identity.family) != {family}:
            raise TableError(f"identity table is of family {sorted(set(identity.family))}, the figure of {family!r}")
    n_samples = thermo[thermo["sample"] != MEAN]["sample"].nunique()
    samples = f"{n_samples} disorder sample{'s' * (n_samples != 1)}"
    temperatures = overlap_panel_temperatures(overlaps) if len(overlaps) else []
    # the identity takes the bottom row's free slot, or a fourth column
    columns = len(QUANTITIES) + (identity is not None and len(temperatures) == len(QUANTITIES))
    fig, axes = _panels(columns, rows=2)
    methods = sorted(set(thermo.method) | set(overlaps.method))
    colours = {method: f"C{i % 10}" for i, method in enumerate(methods)}
    means = thermo[thermo["sample"] == MEAN]
    several = thermo["size"].nunique() > 1 or overlaps["size"].nunique() > 1
    for ax, quantity in zip(axes[0], QUANTITIES):
        for (method, size), rows in means.groupby(["method", "size"]):
            rows = rows.dropna(subset=[quantity]).sort_values("temperature")
            if not rows.empty:
                ax.errorbar(rows.temperature, rows[quantity], yerr=rows[f"{quantity}_err"].fillna(0),
                            label=_curve(method, size, several), **_style(method, colours))
        _log_temperature_axis(ax)
        _label(ax, "temperature", QUANTITY_LABELS[quantity],
               f"{family}, {_cells(thermo)}: {QUANTITY_LABELS[quantity]} ({samples})")
    overlap_means = overlaps[overlaps["sample"] == MEAN]
    for ax, temperature in zip(axes[1], temperatures):
        at = overlap_means[np.isclose(overlap_means.temperature, temperature)]
        for (method, size), rows in at.groupby(["method", "size"]):
            rows = rows.sort_values("q")
            ax.errorbar(rows.q, rows.probability, yerr=rows.probability_err.fillna(0),
                        label=_curve(method, size, several), **_style(method, colours))
        _label(ax, "overlap q", "P(q)", f"{family}, {_cells(at)}: P(q) at T = {temperature:g}")
    used = len(temperatures)
    if identity is not None:
        _identity_panel(axes[1][used], identity, family)
        used += 1
    for ax in [*axes[0][len(QUANTITIES):], *axes[1][used:]]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
