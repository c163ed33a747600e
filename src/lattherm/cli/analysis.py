"""`lattherm analysis ...` commands: comparisons, the CuAu phase diagram and the figures.

    lattherm analysis compare --name ising --reference 4x4=kaufman_4x4.csv \\
        --table mam:4x4=samples_4x4.csv --table mcmc:8x8=mcmc_fe_8x8.csv --out comparison.csv
    lattherm analysis phase-diagram --canonical 0.25=fe_x0.25.csv ... --semi-grand 0.1=sgc_dmu0.1.csv ... \\
        --out-boundaries b.csv --out-order-disorder od.csv --out-semi-grand sg.csv
    lattherm analysis figure-free-energy-error comparison_*.csv --out fig.png --out fig.pdf
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import torch
import typer

from lattherm.analysis import figures
from lattherm.analysis.phase_diagram import order_disorder_temperatures, phase_boundaries, semi_grand_compositions
from lattherm.errors import LatthermError
from lattherm.io import read_table, save_figure, table_path, write_table

app = typer.Typer(no_args_is_help=True)

OUT_HELP = "Output figure; repeat for several formats (.png, .pdf)."


def _split(text: str, sep: str, what: str) -> tuple[str, str]:
    key, found, value = text.partition(sep)
    if not found or not key or not value:
        raise LatthermError(f"{what} must look like KEY{sep}VALUE, got {text!r}")
    return key, value


def _keyed_number(text: str, what: str, columns: list[str]) -> tuple[float, pd.DataFrame]:
    key, path = _split(text, "=", what)
    try:
        number = float(key)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise LatthermError(f"{what} {text!r}: {key!r} is not a finite number")
    return number, read_table(path, columns)


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
    name: str = typer.Option(..., help="System name for the table."),
    reference: List[str] = typer.Option([], help="Exact reference SIZE=PATH, e.g. 4x4=kaufman_4x4.csv."),
    table: List[str] = typer.Option(..., help="Estimates METHOD:SIZE=PATH; repeat. Tables of one method and size are joined."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """Free-energy errors of every estimate against the exact reference of its cell."""
    table_path(out)
    references = dict((size, read_table(path)) for size, path in (_split(r, "=", "--reference") for r in reference))
    triples = []
    for item in table:
        label, path = _split(item, "=", "--table")
        method, size = _split(label, ":", "--table label")
        triples.append((method, size, read_table(path)))
    write_table(out, figures.compare_free_energies(name, references, triples))
    typer.echo(f"wrote {out}")


@app.command("phase-diagram")
def phase_diagram(
    canonical: List[str] = typer.Option(..., help="Canonical free energies X=PATH (Au fraction X); repeat."),
    semi_grand: List[str] = typer.Option([], help="Semi-grand scans DMU=PATH (eV); repeat."),
    tolerance: float = typer.Option(1e-4, help="Hull gaps below this (eV/site) are noise, not two-phase regions."),
    out_boundaries: Path = typer.Option(..., help="Two-phase regions: temperature, x_left, x_right."),
    out_order_disorder: Path = typer.Option(..., help="Order-disorder temperatures from C_v peaks."),
    out_semi_grand: Path = typer.Option(..., help="Semi-grand x(dmu): MC against the prediction from F(x, T)."),
) -> None:
    """CuAu temperature-composition phase diagram from canonical F(x, T) scans."""
    for out in (out_boundaries, out_order_disorder, out_semi_grand):
        table_path(out)
    columns = ["temperature", "free_energy_per_site", "heat_capacity_per_site"]
    frames = [frame.assign(concentration=x) for x, frame in (_keyed_number(item, "--canonical", columns)
                                                             for item in canonical)]
    semi_grand_frames = [_keyed_number(item, "--semi-grand", ["temperature", "composition"]) for item in semi_grand]
    free = pd.concat(frames, ignore_index=True)
    boundaries, order_disorder = phase_boundaries(free, tol=tolerance), order_disorder_temperatures(free)
    checks = [pd.DataFrame({"temperature": frame["temperature"], "dmu": dmu, "concentration_mc": frame["composition"]})
              for dmu, frame in semi_grand_frames]
    check = pd.concat(checks, ignore_index=True) if checks else pd.DataFrame(columns=["temperature", "dmu", "concentration_mc"])
    predicted = semi_grand_compositions(free, sorted(set(check["dmu"])))
    predicted = predicted.rename(columns={"concentration": "concentration_predicted"})
    # Compare only at temperatures both scans share (exact float match: both come from one config).
    check = check.merge(predicted, on=["temperature", "dmu"], how="inner")
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
    tables: List[str] = typer.Argument(..., help="MCMC tables NAME=PATH, one per system."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """Heat capacity and order parameter versus temperature."""
    named = dict((key, read_table(path)) for key, path in (_split(t, "=", "table") for t in tables))
    _save(figures.thermodynamics_figure(named), out)


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
    checkpoint: List[Path] = typer.Option(..., help="Trained model checkpoint; repeat, paired with --system."),
    system: List[Path] = typer.Option(..., help="System YAML of each checkpoint's cell."),
    seed: int = typer.Option(0, help="Sampling seed."),
    out: List[Path] = typer.Option(..., help=OUT_HELP),
) -> None:
    """One configuration drawn from each trained model (at its lowest training temperature)."""
    from lattherm.sampling.evaluate import system_cond
    from lattherm.systems import load_system
    from lattherm.training.checkpoint import load_trained_model

    if len(checkpoint) != len(system):
        raise LatthermError(f"got {len(checkpoint)} --checkpoint but {len(system)} --system options")
    generator = torch.Generator().manual_seed(seed)
    snapshots = []
    for ckpt, spec in zip(checkpoint, system):
        sys_ = load_system(spec)
        trained = load_trained_model(ckpt, sys_)
        temperature = trained.temperature
        if temperature is None:  # temperature-conditioned model: draw at the coldest trained temperature
            temperature = trained.checkpoint["config"]["temperature_range"][0]
        cond = system_cond(trained.model, sys_, temperature, trained.conditioning, 1)  # at the system's dmu, x
        with torch.no_grad():
            x, _ = trained.model.sample(1, cond=cond, n_ones=sys_.n_ones, generator=generator)
        snapshots.append((f"{sys_.name}, T = {temperature:g}", sys_.lattice, np.asarray(x[0].cpu())))
    _save(figures.snapshot_figure(snapshots), out)
