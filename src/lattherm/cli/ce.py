"""`lattherm ce ...` commands.

Example (a user's DFT database of Fe-Cr BCC structures)::

    lattherm ce fit --source database --database fecr.db --species Fe,Cr --lattice bcc \
        --lattice-constant 2.87 --cutoffs 6.0,4.5 --out-ce fecr.json --out-metrics metrics.json \
        --out-ground-states ground_states.csv --out-hull-plot hull.png

An icet ``.ce`` file (pickles: reading it can run code) from a trusted source, converted once::

    lattherm ce convert --trust-pickle model.ce --out model.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lattherm.ce.fit import CE_LATTICES, SOURCES
from lattherm.ce.storage import read_cluster_expansion, write_cluster_expansion
from lattherm.io import write_json, write_table

app = typer.Typer(no_args_is_help=True)


def _parse_species(text: str) -> tuple[str, str]:
    species = tuple(s.strip() for s in text.split(","))
    if len(species) != 2 or not all(species):
        raise typer.BadParameter(f"expected two elements A,B (e.g. Cu,Au), got {text!r}", param_hint="--species")
    return species


def _parse_cutoffs(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(c) for c in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated lengths in Å (e.g. 6.0,4.5,4.5), got {text!r}",
                                 param_hint="--cutoffs") from None


@app.command()
def fit(
    source: str = typer.Option(..., help=f"energy source: {' | '.join(SOURCES)}"),
    database: Optional[Path] = typer.Option(None, help="ASE database with energies (source 'database')"),
    species: str = typer.Option("Cu,Au", help="the two elements A,B; concentration x = fraction of B"),
    lattice: str = typer.Option("fcc", help=f"parent lattice: {' | '.join(CE_LATTICES)}"),
    lattice_constant: float = typer.Option(3.8, help="cubic lattice constant of the ideal lattice (Å)"),
    cutoffs: Optional[str] = typer.Option(None, help="cluster cutoffs in Å per order, e.g. 6.0,4.5,4.5 "
                                                     "(default: the published CuAu ones, scaled to the "
                                                     "nearest-neighbour distance)"),
    relax: bool = typer.Option(False, "--relax/--no-relax", help="relax EMT structures (cell + positions)"),
    max_atoms: int = typer.Option(8, help="largest enumerated cell (sources 'published' and 'emt')"),
    fit_method: str = typer.Option("least-squares", help="trainstation fit method"),
    out_ce: Path = typer.Option(..., help="fitted cluster expansion, lattherm's JSON format (.json)"),
    out_metrics: Path = typer.Option(..., help="metrics JSON"),
    out_ground_states: Path = typer.Option(..., help="ground states on the convex hull (.csv)"),
    out_hull_plot: Path = typer.Option(..., help="convex hull plot (.png or .pdf)"),
) -> None:
    """Fit a binary cluster expansion to mixing energies and write model, metrics and hull."""
    from lattherm.ce.fit import fit_cluster_expansion
    from lattherm.ce.hull import plot_hull

    if source not in SOURCES:
        raise typer.BadParameter(f"unknown source {source!r}; expected one of {SOURCES}", param_hint="--source")
    if lattice not in CE_LATTICES:
        raise typer.BadParameter(f"unknown lattice {lattice!r}; expected one of {CE_LATTICES}",
                                 param_hint="--lattice")
    pair = _parse_species(species)
    result = fit_cluster_expansion(source, database=database, relax=relax, max_atoms=max_atoms,
                                   cutoffs=_parse_cutoffs(cutoffs), fit_method=fit_method, species=pair,
                                   lattice=lattice, a=lattice_constant)
    write_cluster_expansion(result.ce, out_ce)
    write_json(out_metrics, result.metrics)
    write_table(out_ground_states, result.ground_states)
    plot_hull(result.table, out_hull_plot, title=f"{''.join(pair)} {lattice.upper()} CE ({source})")
    typer.echo(f"CV RMSE {result.metrics['cv_rmse_mev_per_atom']:.3f} meV/atom on "
               f"{result.metrics['n_structures']} structures; wrote {out_ce}")


@app.command()
def convert(
    source: Path = typer.Argument(..., help="cluster expansion file: an icet .ce (needs --trust-pickle) or JSON"),
    out: Path = typer.Option(..., help="the cluster expansion in lattherm's JSON format (.json)"),
    trust_pickle: bool = typer.Option(False, "--trust-pickle",
                                      help="unpickle an icet .ce file: only one whose origin you trust, as "
                                           "unpickling can run code"),
) -> None:
    """Rewrite a cluster expansion in lattherm's pickle-free JSON format, checked on every later read."""
    write_cluster_expansion(read_cluster_expansion(source, allow_pickle=trust_pickle), out)
    typer.echo(f"wrote {out}")
