"""`lattherm analysis ...` commands: comparisons, the CuAu phase diagram and the figures.

    lattherm analysis compare exact_4x4.csv mam_4x4.csv mcmc_free_energy_8x8.csv --out comparison.csv
    lattherm analysis phase-diagram canonical_x*_free_energy.csv heating_x*.csv semi_grand_*.csv vcsgc_T*_histograms.csv \\
        canonical_x0.5.extxyz --out-boundaries b.csv --out-phases p.csv \\
        --out-transitions t.csv --out-semi-grand sg.csv --out-hysteresis h.csv \\
        --out-vcsgc-check vc.csv --out-vcsgc-binodals vb.csv
    lattherm analysis figure-free-energy-error comparison_*.csv --out fig.png --out fig.pdf
    lattherm analysis disorder-average exact_4x4.csv mcmc_4x4_free_energy.csv overlap_*.csv ... --family glass \\
        --out-thermodynamics thermo.csv --out-overlap overlap.csv
    lattherm analysis disorder-average overlap_pt_8x8_summary.csv ... --family glass --out-identity identity.csv
    lattherm analysis figure-spin-glass --thermodynamics thermo.csv --overlap overlap.csv --out fig.png
    lattherm analysis neural-free-energy --neural grid_2x2x4.csv --neural grid_4x4x8.csv \\
        --reference exact_x0.5_2x2x4.csv --reference mcmc_x0.5_4x4x8_free_energy.csv --out table.csv
    lattherm analysis figure-neural-free-energy --table table.csv --out fig.png --out fig.pdf
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
import torch
import typer

from lattherm.analysis import figures
from lattherm.analysis.phase_diagram import phase_diagram_tables
from lattherm.cli.options import ALLOYS, system_from
from lattherm.errors import LatthermError
from lattherm.io import input_file, read_table, save_figure, table_path, write_table

app = typer.Typer(no_args_is_help=True)

OUT_HELP = "Output figure; repeat for several formats (.png, .pdf)."


def _save(fig, outs: List[Path]) -> None:
    formats = fig.canvas.get_supported_filetypes()
    unknown = [str(out) for out in outs if out.suffix.lstrip(".") not in formats]
    if unknown:
        raise LatthermError(f"--out {unknown} is not a figure format; use one of {sorted(formats)}")
    for out in outs:
        save_figure(fig, out)
        typer.echo(f"wrote {out}")


@app.command()
def compare(
    tables: List[Path] = typer.Argument(..., help="Exact references and estimates of one system (tables with "
                                        "system, method and size columns, as the stage commands write them)."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """Free-energy errors of every estimate against the exact reference of its cell."""
    table_path(out)
    write_table(out, figures.compare_free_energies([read_table(path) for path in tables], [str(p) for p in tables]))
    typer.echo(f"wrote {out}")


@app.command("phase-diagram")
def phase_diagram(
    inputs: List[Path] = typer.Argument(..., help="Canonical free-energy tables (with a concentration column; "
                                        "`lattherm mcmc canonical` and `lattherm mcmc integrate`), heating scans and "
                                        "crossings (`lattherm mcmc transition`) and semi-grand scans up and down "
                                        "(with a dmu column; `lattherm mcmc semi-grand`), the composition histograms of "
                                        "VCSGC phi scans (with a phi column; `lattherm mcmc vcsgc --out-histograms`), "
                                        "whose F(c) is found by reweighting; and .extxyz configurations "
                                        "of canonical scans (`mcmc canonical --out-structures`), whose "
                                        "lowest-temperature frame is matched to the ordered prototypes."),
    tolerance: float = typer.Option(1e-4, help="Hull gaps below this (eV/site) are noise, not two-phase regions."),
    out_boundaries: Path = typer.Option(..., help="Two-phase regions: temperature, x_left, x_right."),
    out_phases: Path = typer.Option(..., help="The phase at every scanned (x, T), cooling and heating."),
    out_transitions: Path = typer.Option(..., help="Order-disorder T_c brackets (cooling/heating), C_v peaks and "
                                         "the StructureMatcher check of the ordered compositions."),
    out_semi_grand: Path = typer.Option(..., help="Semi-grand x(dmu) up and down: MC against the prediction from "
                                        "F(x, T) and its bracket."),
    out_hysteresis: Path = typer.Option(..., help="The dmu windows where the semi-grand scans up and down disagree "
                                        "(first-order jumps), per temperature."),
    out_vcsgc_check: Path = typer.Option(..., help="Canonical F(x) against the VCSGC F(c) at each VCSGC "
                                         "temperature and canonical concentration, one constant removed."),
    out_vcsgc_binodals: Path = typer.Option(..., help="Two-phase regions of the canonical hull and of the VCSGC "
                                            "F(c), matched, with their common-tangent slopes."),
) -> None:
    """Temperature-composition phase diagram of an alloy from canonical F(x, T) scans."""
    from ase.io import read

    from lattherm.phases import matching_prototype

    outs = {"boundaries": out_boundaries, "phases": out_phases, "transitions": out_transitions,
            "semi_grand": out_semi_grand, "hysteresis": out_hysteresis, "vcsgc_check": out_vcsgc_check,
            "vcsgc_binodals": out_vcsgc_binodals}
    for out in outs.values():
        table_path(out)
    structures = [path for path in inputs if path.suffix == ".extxyz"]
    tables = [path for path in inputs if path.suffix != ".extxyz"]
    result = phase_diagram_tables([read_table(path) for path in tables], tolerance, [str(path) for path in tables])
    matches = {}
    for path in structures:
        frames = read(input_file(path, "structures"), index=":")
        coldest = min(frames, key=lambda atoms: atoms.info["temperature"])
        matches[round(float(coldest.info["concentration"]), 9)] = (
            coldest.info["temperature"], matching_prototype(coldest, coldest.info["species"].split(",")))
    transitions = result["transitions"]
    transitions["matched_at"] = [matches.get(round(x, 9), (np.nan, None))[0] for x in transitions.concentration]
    transitions["prototype_match"] = [matches.get(round(x, 9), (np.nan, None))[1] or "none"
                                      for x in transitions.concentration]
    for name, out in outs.items():
        write_table(out, result[name])
    typer.echo(f"wrote {', '.join(map(str, outs.values()))}")


@app.command("disorder-average")
def disorder_average(
    tables: List[Path] = typer.Argument(..., help="Tables of a spin-glass family's samples on the training cell: "
                                        "exact references, MCMC free energies, neural estimates, and P(q) tables "
                                        "(exact, parallel tempering, neural); for --out-identity the "
                                        "parallel-tempering summaries (overlap_pt_*_summary.csv)."),
    family: str = typer.Option(..., help="The family's name (its system block)."),
    out_thermodynamics: Optional[Path] = typer.Option(None, help="F, E, C per site per sample and method, and their "
                                                      "sample means."),
    out_overlap: Optional[Path] = typer.Option(None, help="P(q) and chi_SG per sample and method, and their sample "
                                               "means."),
    out_identity: Optional[Path] = typer.Option(None, help="Gaussian couplings only: the energy / link-overlap "
                                                "identity [<E>]/N_b = -beta sigma^2 (1 - [q_l]) per temperature, its "
                                                "two sides' distance in sample-to-sample sigmas and the equilibration "
                                                "check."),
) -> None:
    """Disorder averages of a spin-glass family, with sample-to-sample error bars."""
    from lattherm.analysis.spin_glass import disorder_average as average
    from lattherm.analysis.spin_glass import link_overlap_identity

    if out_thermodynamics is None and out_overlap is None and out_identity is None:
        raise LatthermError("give --out-thermodynamics and --out-overlap, --out-identity, or all three")
    if (out_thermodynamics is None) != (out_overlap is None):
        raise LatthermError("--out-thermodynamics and --out-overlap go together")
    outs = [out for out in (out_thermodynamics, out_overlap, out_identity) if out is not None]
    for out in outs:
        table_path(out)
    read = {str(path): read_table(path) for path in tables}
    summaries = {source: table for source, table in read.items() if "link_energy_per_bond" in table.columns}
    others = {source: table for source, table in read.items() if source not in summaries}
    if summaries and out_identity is None:
        raise LatthermError(f"{next(iter(summaries))} is a parallel-tempering summary: it goes with --out-identity")
    if out_identity is not None:
        write_table(out_identity, link_overlap_identity(list(summaries.values()), family, list(summaries)))
    if out_thermodynamics is not None:
        thermo, overlaps = average(list(others.values()), family, list(others))
        write_table(out_thermodynamics, thermo)
        write_table(out_overlap, overlaps)
    typer.echo(f"wrote {' and '.join(map(str, outs))}")


@app.command("neural-free-energy")
def neural_free_energy(
    neural: List[Path] = typer.Option(..., help="`lattherm neural grid` tables (one per cell)."),
    reference: List[Path] = typer.Option(..., help="Exact reference tables (`lattherm exact reference`) and MCMC "
                                         "free-energy tables (`lattherm mcmc integrate`) at each composition and cell."),
    ess_threshold: float = typer.Option(0.01, help="Below this ESS per sample a point is flagged 'ESS too low' "
                                        "(above a Pareto k-hat of 0.7, 'weights heavy-tailed'; with the importance-sampled "
                                        "energy > 4 sigma from the reference's, 'energy off the reference')."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet), one row per cell, x and T."),
) -> None:
    """Neural F(x, T) against the reference of each grid point: sigma distance, meV/site, reliability flags."""
    from lattherm.analysis.neural_free_energy import neural_free_energy_table

    table_path(out)
    if not 0 <= ess_threshold <= 1:
        raise LatthermError(f"--ess-threshold = {ess_threshold} must lie in [0, 1]")
    table = neural_free_energy_table([read_table(p) for p in neural], [read_table(p) for p in reference],
                                     ess_threshold, [str(p) for p in neural], [str(p) for p in reference])
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command("figure-neural-free-energy")
def figure_neural_free_energy(
    table: Path = typer.Option(..., help="`lattherm analysis neural-free-energy` table."),
    alloy: str = typer.Option("", help="The alloy's name, in the panel titles."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """F_neural - F_ref (meV/site) against T per composition and cell; unreliable points marked with their note."""
    from lattherm.analysis.neural_free_energy import neural_free_energy_figure

    _save(neural_free_energy_figure(read_table(table), alloy), out)


@app.command("figure-spin-glass")
def figure_spin_glass(
    identity: Optional[List[Path]] = typer.Argument(None, help="At most one `disorder-average --out-identity` table (Gaussian "
                                                    "families): a panel of the energy / link-overlap identity."),
    thermodynamics: Path = typer.Option(..., help="`disorder-average --out-thermodynamics` table."),
    overlap: Path = typer.Option(..., help="`disorder-average --out-overlap` table."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """A spin-glass family: F, E, C per site against T and P(q), exact vs parallel tempering vs neural;
    with an identity table, parallel tempering's equilibration check."""
    from lattherm.analysis.spin_glass import spin_glass_figure

    if identity and len(identity) > 1:
        raise LatthermError(f"identity tables {[str(p) for p in identity]}: a family has one")
    _save(spin_glass_figure(read_table(thermodynamics), read_table(overlap),
                            read_table(identity[0]) if identity else None), out)


@app.command("figure-free-energy-error")
def figure_free_energy_error(
    comparisons: List[Path] = typer.Argument(..., help="Tables from `lattherm analysis compare`."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """Free-energy error versus temperature (neural samplers, MCMC, exact cross-checks)."""
    _save(figures.free_energy_error_figure(pd.concat([read_table(p) for p in comparisons])), out)


@app.command("figure-ess")
def figure_ess(
    comparisons: List[Path] = typer.Argument(..., help="Tables from `lattherm analysis compare`."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """Effective sample size per sample versus system size."""
    _save(figures.ess_figure(pd.concat([read_table(p) for p in comparisons])), out)


@app.command("figure-thermodynamics")
def figure_thermodynamics(
    tables: List[Path] = typer.Argument(..., help="MCMC scan tables, one per system."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """Heat capacity and order parameter versus temperature."""
    _save(figures.thermodynamics_figure([read_table(path) for path in tables]), out)


@app.command("figure-phase-diagram")
def figure_phase_diagram(
    vcsgc: Optional[List[Path]] = typer.Argument(None, help="VCSGC phi scans (`lattherm mcmc vcsgc`), if any."),
    boundaries: Path = typer.Option(...),
    phases: Path = typer.Option(...),
    transitions: Path = typer.Option(...),
    semi_grand: Path = typer.Option(...),
    hysteresis: Path = typer.Option(...),
    vcsgc_check: Path = typer.Option(..., help="`phase-diagram --out-vcsgc-check`."),
    vcsgc_binodals: Path = typer.Option(..., help="`phase-diagram --out-vcsgc-binodals`."),
    cell: str = typer.Option("", help="The scans' cell, stated in the title (e.g. 'fcc_cubic 4x4x4, 256 sites')."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """CuAu phase diagram (phases, two-phase regions, T_c brackets), order vs T, semi-grand and VCSGC checks."""
    scans = pd.concat([read_table(path) for path in vcsgc], ignore_index=True) if vcsgc else None
    fig = figures.phase_diagram_figure(read_table(boundaries), read_table(phases), read_table(transitions),
                                       read_table(semi_grand), read_table(hysteresis), cell, scans,
                                       read_table(vcsgc_check), read_table(vcsgc_binodals))
    _save(fig, out)


@app.command("figure-snapshots")
def figure_snapshots(
    checkpoints: List[Path] = typer.Argument(..., help="Trained model checkpoints, one panel each."),
    systems: Path = typer.Option(..., help="Directory of the system blocks, NAME.json (NAME as the checkpoint records it)."),
    alloys: Path = ALLOYS,
    seed: int = typer.Option(0, help="Sampling seed."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """One configuration drawn from each trained model on its training cell (at its lowest
    training temperature)."""
    from lattherm.sampling.evaluate import system_cond
    from lattherm.training.checkpoint import load_trained_model, read_checkpoint

    generator = torch.Generator().manual_seed(seed)
    snapshots = []
    for checkpoint in checkpoints:
        sys_ = system_from(systems / f"{read_checkpoint(checkpoint)['system']['name']}.json", None, alloys)
        trained = load_trained_model(checkpoint, sys_)
        temperature = min(trained.evaluation_temperatures(sys_.config.temperatures))
        cond = system_cond(trained.model, sys_, temperature, trained.conditioning, 1)  # at the system's dmu, x
        with torch.no_grad():
            x, _ = trained.model.sample(1, cond=cond, n_ones=sys_.n_ones, generator=generator)
        snapshots.append((f"{sys_.name}, T = {temperature:g}", sys_.lattice, np.asarray(x[0].cpu())))
    _save(figures.snapshot_figure(snapshots), out)
