"""`lattherm analysis ...` commands: comparisons, the CuAu phase diagram and the figures.

    lattherm analysis compare exact_4x4.csv mam_4x4.csv mcmc_free_energy_8x8.csv --out comparison.csv
    lattherm analysis phase-diagram canonical_free_energy_x*.csv semi_grand_dmu*.csv \\
        --out-boundaries b.csv --out-order-disorder od.csv --out-semi-grand sg.csv
    lattherm analysis figure-free-energy-error comparison_*.csv --out fig.png --out fig.pdf
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import torch
import typer

from lattherm.analysis import figures
from lattherm.analysis.phase_diagram import phase_diagram_tables
from lattherm.cli.options import ALLOYS, system_from
from lattherm.errors import LatthermError
from lattherm.io import read_table, save_figure, table_path, write_table

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
    tables: List[Path] = typer.Argument(..., help="Canonical free-energy tables (with a concentration column) and "
                                        "semi-grand scans (with a dmu column), from `lattherm mcmc mchammer`."),
    tolerance: float = typer.Option(1e-4, help="Hull gaps below this (eV/site) are noise, not two-phase regions."),
    out_boundaries: Path = typer.Option(..., help="Two-phase regions: temperature, x_left, x_right."),
    out_order_disorder: Path = typer.Option(..., help="Order-disorder temperatures from C_v peaks."),
    out_semi_grand: Path = typer.Option(..., help="Semi-grand x(dmu): MC against the prediction from F(x, T)."),
) -> None:
    """Temperature-composition phase diagram of an alloy from canonical F(x, T) scans."""
    for out in (out_boundaries, out_order_disorder, out_semi_grand):
        table_path(out)
    boundaries, order_disorder, check = phase_diagram_tables([read_table(path) for path in tables], tolerance,
                                                             [str(path) for path in tables])
    write_table(out_boundaries, boundaries)
    write_table(out_order_disorder, order_disorder)
    write_table(out_semi_grand, check)
    typer.echo(f"wrote {out_boundaries}, {out_order_disorder}, {out_semi_grand}")


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
    boundaries: Path = typer.Option(...),
    order_disorder: Path = typer.Option(...),
    semi_grand: Path = typer.Option(...),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """CuAu phase diagram and the semi-grand cross-check."""
    fig = figures.phase_diagram_figure(read_table(boundaries), read_table(order_disorder), read_table(semi_grand))
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
