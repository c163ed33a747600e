"""`lattherm ce ...` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lattherm.ce.fit import SOURCES
from lattherm.io import atomic_path, write_json, write_table

app = typer.Typer(no_args_is_help=True)


@app.command()
def fit(
    source: str = typer.Option(..., help=f"energy source: {' | '.join(SOURCES)}"),
    database: Optional[Path] = typer.Option(None, help="ASE database with energies (source 'database')"),
    relax: bool = typer.Option(False, "--relax/--no-relax", help="relax EMT structures (cell + positions)"),
    max_atoms: int = typer.Option(8, help="largest enumerated cell (sources 'published' and 'emt')"),
    fit_method: str = typer.Option("least-squares", help="trainstation fit method"),
    out_ce: Path = typer.Option(..., help="fitted icet cluster expansion (.ce)"),
    out_metrics: Path = typer.Option(..., help="metrics JSON"),
    out_ground_states: Path = typer.Option(..., help="ground states on the convex hull (.csv)"),
    out_hull_plot: Path = typer.Option(..., help="convex hull plot (.png or .pdf)"),
) -> None:
    """Fit a CuAu cluster expansion to mixing energies and write model, metrics and hull."""
    from lattherm.ce.fit import fit_cluster_expansion
    from lattherm.ce.hull import plot_hull

    if source not in SOURCES:
        raise typer.BadParameter(f"unknown source {source!r}; expected one of {SOURCES}", param_hint="--source")
    result = fit_cluster_expansion(source, database=database, relax=relax, max_atoms=max_atoms,
                                   fit_method=fit_method)
    with atomic_path(out_ce) as tmp:
        result.ce.write(str(tmp))
    write_json(out_metrics, result.metrics)
    write_table(out_ground_states, result.ground_states)
    plot_hull(result.table, out_hull_plot, title=f"CuAu CE ({source})")
    typer.echo(f"CV RMSE {result.metrics['cv_rmse_mev_per_atom']:.3f} meV/atom on "
               f"{result.metrics['n_structures']} structures; wrote {out_ce}")
