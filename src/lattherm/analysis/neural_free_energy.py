"""Neural F(x, T) of an alloy: one transformer conditioned on temperature and composition.

The ``neural_phase_diagram`` block (:class:`NeuralPhaseDiagramConfig`) names a transformer from
``models``, the canonical training cell (enumerated: the exact reference at every grid point),
a larger cell it is transferred and fine-tuned to (where batched MCMC scans from T = inf with
MBAR free energies are the reference), the grid of compositions and temperatures, and the
budgets. :func:`neural_free_energy_table` joins the importance-sampled F(x, T) of both cells with
their references point by point; :func:`neural_free_energy_figure` draws F_neural - F_ref.

Where the ESS per sample is below ``ess_threshold`` (a handful of weights dominate) or the
weights' Pareto k-hat is above 0.7 (:func:`lattherm.sampling.estimators.pareto_k`: a tail so
heavy that the ESS and the error bar, moments of the same weights, are themselves unreliable)
the importance-sampling error bar cannot be trusted. Neither diagnostic can see a region of
configurations q never draws (a phase: the transferred model of a CuAu cell at its ordering
temperature draws only disordered configurations, where MCMC finds 40 % ordered, at ESS 0.03 and
k-hat 0.68); the importance-sampled energy can, where that region's energy differs: a point whose
E_IS lies more than 4 combined sigma from the reference's energy is flagged too. The table keeps
every number but flags the point (``reliable`` False, ``note`` naming each reason), and the figure
marks it, with its note, instead of plotting it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lattherm.analysis.figures import TableError, require_columns
from lattherm.lattices import cell_sites, size_tag
from lattherm.sampling.estimators import PARETO_K_MAX
from lattherm.schema import ConfigError, from_block
from lattherm.systems import McmcConfig, SystemConfig

MEV = 1e3  # eV -> meV
ESS_TOO_LOW = "ESS too low"
HEAVY_TAILED = f"weights heavy-tailed (Pareto k > {PARETO_K_MAX:g})"
ENERGY_SIGMA_MAX = 4.0
ENERGY_OFF = f"energy off the reference (> {ENERGY_SIGMA_MAX:g} sigma): a phase missed?"
FLAG_TAGS = {ESS_TOO_LOW: "ESS", HEAVY_TAILED: "k", ENERGY_OFF: "E"}  # the figure's short labels
TABLE_COLUMNS = ["cell", "sites", "x", "T", "F_neural", "err", "ESS", "pareto_k", "reliable", "F_ref", "err_ref",
                 "method_ref", "sigma", "diff_meV_per_site", "E_neural", "E_err", "E_ref", "E_err_ref", "E_sigma",
                 "note"]
"""The comparison table: per site free energies and energies in eV, ``sigma`` = (F_neural - F_ref) /
combined error, ``diff_meV_per_site`` = F_neural - F_ref in meV/site, ``E_neural`` the
importance-sampled energy, ``E_sigma`` = (E_neural - E_ref) / combined error; ``note`` says why a
point is not reliable ("ESS too low", "weights heavy-tailed (Pareto k > 0.7)", "energy off the
reference (> 4 sigma): a phase missed?", joined by "; ")."""


@dataclass
class NeuralPhaseDiagramConfig:
    """The neural F(x, T) of one alloy (``$defs/neural_phase_diagram``): the transformer
    ``model`` (a section under ``models``) trained once, conditioned on temperature and
    composition over the ranges of ``temperatures`` and ``concentrations``, on the canonical
    ``train_size`` cell; its F(x, T) there against enumeration, and on ``transfer_size`` (after
    ``finetune_steps`` at ``finetune_lr``) against batched MCMC (``mcmc``: the scan from T = inf, with every grid
    temperature on it). ``training`` overrides the workflow's ``training`` section for this run."""

    alloy: str
    model: str
    concentrations: list[float]
    temperatures: list[float]
    mcmc: McmcConfig
    lattice: str = "fcc"
    train_size: list[int] = field(default_factory=lambda: [2, 2, 4])
    transfer_size: list[int] | None = field(default_factory=lambda: [4, 4, 8])
    training: dict = field(default_factory=dict)
    finetune_steps: int = 20
    finetune_lr: float = 1e-4
    samples: int = 2000
    ess_threshold: float = 0.01

    @classmethod
    def from_dict(cls, block: dict, where: str = "neural_phase_diagram") -> "NeuralPhaseDiagramConfig":
        config = from_block(cls, block, "neural_phase_diagram", where,
                            mcmc=lambda mcmc, at: McmcConfig.from_dict(mcmc, at))
        for name in ("concentrations", "temperatures"):
            values = getattr(config, name)
            if sorted(set(values)) != list(values):
                raise ConfigError(f"{where}.{name} = {values} must be increasing without repeats")
        n = cell_sites(config.lattice, config.train_size)
        for i, x in enumerate(config.concentrations):
            if abs(x * n - round(x * n)) > 1e-9:
                raise ConfigError(f"{where}.concentrations[{i}] = {x!r} gives {x * n:g} species-1 sites on the "
                                  f"{size_tag(config.train_size)} {config.lattice} training cell of {n} sites; "
                                  "it must give a whole number")
        for i, t in enumerate(config.temperatures):
            if not any(math.isclose(t, s, rel_tol=1e-9) for s in config.mcmc.temperatures):
                raise ConfigError(f"{where}.temperatures[{i}] = {t!r} is not on {where}.mcmc.temperatures = "
                                  f"{config.mcmc.temperatures}: the MCMC reference has no free energy there")
        if config.transfer_size is not None and (len(config.transfer_size) != len(config.train_size) or any(
                s % t for s, t in zip(config.transfer_size, config.train_size))):
            raise ConfigError(f"{where}.transfer_size = {config.transfer_size} does not repeat train_size = "
                              f"{config.train_size} along every axis")
        for x in config.concentrations:  # the system checks too (cells, alloy, move) with names under `where`
            SystemConfig.from_dict(config.system_block(x), where)
        return config

    @property
    def sizes(self) -> list[list[int]]:
        """The training cell, then the transfer cell (if any)."""
        return [self.train_size] + ([] if self.transfer_size is None else [self.transfer_size])

    def system_block(self, concentration: float) -> dict:
        """The canonical system block at one composition: both cells, the grid temperatures and
        the MCMC scan (what `lattherm exact reference`, `mcmc run` and `neural grid` read)."""
        return {"model": "cluster_expansion", "alloy": self.alloy, "lattice": self.lattice, "ensemble": "canonical",
                "concentration": concentration, "train_size": list(self.train_size),
                "transfer_sizes": [] if self.transfer_size is None else [list(self.transfer_size)],
                "temperatures": list(self.temperatures), "mcmc": vars(self.mcmc)}

    def training_block(self, training: dict, seed: int) -> dict:
        """The training settings of the one conditioned run: the workflow's ``training`` section,
        this block's overrides, and the ranges of the grid; trained by example, the examples
        are drawn at every grid composition."""
        block = {**training, **self.training, "seed": seed,
                 "temperature_range": [min(self.temperatures), max(self.temperatures)],
                 "concentration_range": [min(self.concentrations), max(self.concentrations)]}
        if block.get("example_sweeps"):
            block["example_concentrations"] = list(self.concentrations)
        return block


def _references(tables: list[pd.DataFrame], sources: list[str]) -> pd.DataFrame:
    """One row per (cell, x, T) of the exact and MCMC tables: F and E per site, their errors (0
    where exact), the method."""
    rows = []
    for table, source in zip(tables, sources):
        require_columns(table, ["method", "size", "temperature", "free_energy_per_site", "energy_per_site"],
                        f"reference {source}")
        if "concentration" not in table.columns:
            require_columns(table, ["n_ones", "n_sites"], f"reference {source} (no concentration column)")
        x = table.concentration if "concentration" in table.columns else table.n_ones / table.n_sites
        err = table.free_energy_per_site_err if "free_energy_per_site_err" in table.columns else 0.0
        e_err = table.energy_per_site_err if "energy_per_site_err" in table.columns else 0.0
        rows.append(pd.DataFrame({"cell": table["size"], "x": x.round(12), "T": table.temperature,
                                  "F_ref": table.free_energy_per_site, "err_ref": err, "method_ref": table.method,
                                  "E_ref": table.energy_per_site, "E_err_ref": e_err}))
    return pd.concat(rows, ignore_index=True)


def neural_free_energy_table(neural: list[pd.DataFrame], references: list[pd.DataFrame], ess_threshold: float,
                             neural_sources: list[str] | None = None,
                             reference_sources: list[str] | None = None) -> pd.DataFrame:
    """The neural F(x, T) of every grid table (``lattherm neural grid``) next to the reference
    of its cell, composition and temperature (exact enumeration, or MCMC + MBAR): one tidy row
    per point with the columns of :data:`TABLE_COLUMNS`. A point without a reference is an
    error; a point with ESS below ``ess_threshold``, Pareto k-hat above 0.7 or its importance-sampled
    energy more than 4 sigma from the reference's is flagged, its numbers kept."""
    neural_sources = neural_sources or [f"neural table {i}" for i in range(len(neural))]
    reference_sources = reference_sources or [f"reference table {i}" for i in range(len(references))]
    grids = []
    for table, source in zip(neural, neural_sources):
        require_columns(table, ["size", "n_sites", "concentration", "temperature", "free_energy_per_site",
                                "free_energy_per_site_err", "ess", "pareto_k", "energy_is_per_site",
                                "energy_is_per_site_err"], f"neural {source}")
        grids.append(pd.DataFrame({"cell": table["size"], "sites": table.n_sites, "x": table.concentration.round(12),
                                   "T": table.temperature, "F_neural": table.free_energy_per_site,
                                   "err": table.free_energy_per_site_err, "ESS": table.ess,
                                   "pareto_k": table.pareto_k, "E_neural": table.energy_is_per_site,
                                   "E_err": table.energy_is_per_site_err}))
    grid = pd.concat(grids, ignore_index=True)
    refs = _references(references, reference_sources)
    # a reference table also holds temperatures off the grid; match on the grid's, to float rounding
    refs["T_key"] = refs["T"].round(6)
    grid["T_key"] = grid["T"].round(6)
    table = grid.merge(refs.drop(columns="T"), on=["cell", "x", "T_key"], how="left").drop(columns="T_key")
    missing = table[table.F_ref.isna()]
    if len(missing):
        first = missing.iloc[0]
        raise TableError(f"no reference free energy for cell {first.cell} at x = {first.x:g}, T = {first['T']:g} "
                          f"(references: {', '.join(reference_sources)})")
    if table.duplicated(["cell", "x", "T"]).any():
        raise TableError("two references (or two neural tables) for the same cell, x and T")
    combined = np.hypot(table.err, table.err_ref)
    table["sigma"] = (table.F_neural - table.F_ref) / np.where(combined > 0, combined, np.nan)
    table["diff_meV_per_site"] = (table.F_neural - table.F_ref) * MEV
    combined = np.hypot(table.E_err, table.E_err_ref)
    table["E_sigma"] = (table.E_neural - table.E_ref) / np.where(combined > 0, combined, np.nan)
    flags = {ESS_TOO_LOW: table.ESS < ess_threshold, HEAVY_TAILED: table.pareto_k > PARETO_K_MAX,
             ENERGY_OFF: table.E_sigma.abs() > ENERGY_SIGMA_MAX}
    table["reliable"] = ~np.logical_or.reduce(list(flags.values()))
    table["note"] = ["; ".join(why for why, flagged in zip(flags, point) if flagged) for point in zip(*flags.values())]
    order = {cell: i for i, cell in enumerate(grid.cell.drop_duplicates())}
    table = table.sort_values(["cell", "x", "T"], key=lambda c: c.map(order) if c.name == "cell" else c)
    return table[TABLE_COLUMNS].reset_index(drop=True)


def neural_free_energy_figure(table: pd.DataFrame, alloy: str = ""):
    """F_neural - F_ref (meV/site) against T, one panel per cell (its reference method and site
    count in the title), one series per composition with combined error bars; points
    that are not reliable have no number: a cross along the bottom edge labelled with its reasons'
    tags (:data:`FLAG_TAGS`), the tags' key under the panels."""
    import matplotlib.pyplot as plt

    require_columns(table, TABLE_COLUMNS, "neural free-energy table")
    cells = list(table.cell.drop_duplicates())
    fig, axes = plt.subplots(1, len(cells), figsize=(5.2 * len(cells), 4.0), squeeze=False)
    colours = plt.get_cmap("viridis")
    xs = sorted(table.x.unique())
    shown: set[str] = set()  # the reasons some point is flagged for
    for ax, cell in zip(axes[0], cells):
        part = table[table.cell == cell]
        for i, x in enumerate(xs):
            rows = part[part.x == x]
            colour = colours(i / max(1, len(xs) - 1))
            good, low = rows[rows.reliable], rows[~rows.reliable]
            err = np.hypot(good.err, good.err_ref) * MEV
            ax.errorbar(good["T"], good.diff_meV_per_site, yerr=err, fmt="o-", color=colour, capsize=3,
                        label=f"x = {x:g}" if len(good) else None)
            if len(low):  # no number: a cross along the bottom edge (x in data, y in axes units), labelled
                edge = ax.get_xaxis_transform()
                ax.scatter(low["T"], np.full(len(low), 0.04 + 0.07 * i), marker="x", color=colour, s=50,
                           transform=edge, label=None if len(good) else f"x = {x:g}")
                for t, note in zip(low["T"], low.note):
                    reasons = note.split("; ")
                    shown.update(reasons)
                    ax.annotate(",".join(FLAG_TAGS[r] for r in reasons), (t, 0.04 + 0.07 * i), xycoords=edge,
                                textcoords="offset points", xytext=(6, -3), fontsize=7, color=colour)
        ax.axhline(0.0, color="0.5", lw=0.8)
        span = part["T"].max() - part["T"].min() or part["T"].max()
        ax.set_xlim(part["T"].min() - 0.05 * span, part["T"].max() + 0.2 * span)  # every point, flagged ones too
        method = ", ".join(sorted(part.method_ref.unique()))
        ax.set_title(f"{alloy} {cell} ({int(part.sites.iloc[0])} sites) vs {method}".strip(), fontsize=10)
        ax.set_xlabel("T (K)")
        ax.set_ylabel("F_neural - F_ref (meV/site)")
        ax.legend(fontsize=8)
    if shown:  # the tags' key, under the panels
        fig.text(0.01, 0.01, "no number (x): " + "; ".join(f"{FLAG_TAGS[r]} = {r}" for r in FLAG_TAGS if r in shown),
                 fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.05 if shown else 0, 1, 1))
    return fig
