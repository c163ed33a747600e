"""`lattherm ce ...` commands.

Example (a user's DFT database of Fe-Cr BCC structures), with ``fecr.yaml``::

    source: database
    database: fecr.db
    species: [Fe, Cr]
    lattice: bcc
    lattice_constant: 2.87
    cutoffs: [6.0, 4.5]

    lattherm ce fit --alloy fecr.yaml --out-ce fecr.json --out-metrics metrics.json \
        --out-ground-states ground_states.csv --out-hull-plot hull.png

An icet ``.ce`` file (pickles: reading it can run code) from a trusted source, converted once::

    lattherm ce convert --trust-pickle model.ce --out model.json
"""

from __future__ import annotations

from pathlib import Path
import typer

from lattherm.ce.storage import read_cluster_expansion, write_cluster_expansion
from lattherm.io import load_yaml, write_json, write_table

app = typer.Typer(no_args_is_help=True)


@app.command()
def fit(
    alloy: Path = typer.Option(..., help="Alloy block (YAML or JSON, fields of lattherm.ce.fit.AlloyConfig)."),
    out_ce: Path = typer.Option(..., help="fitted cluster expansion, lattherm's JSON format (.json)"),
    out_metrics: Path = typer.Option(..., help="metrics JSON"),
    out_ground_states: Path = typer.Option(..., help="ground states on the convex hull (.csv)"),
    out_hull_plot: Path = typer.Option(..., help="convex hull plot (.png or .pdf)"),
) -> None:
    """Fit a binary cluster expansion to mixing energies and write model, metrics and hull."""
    from lattherm.ce.fit import AlloyConfig
    from lattherm.ce.hull import plot_hull

    config = AlloyConfig.from_dict(load_yaml(alloy, mapping=True), where=str(alloy))
    result = config.fit()
    write_cluster_expansion(result.ce, out_ce)
    write_json(out_metrics, result.metrics)
    write_table(out_ground_states, result.ground_states)
    plot_hull(result.table, out_hull_plot,
              title=f"{''.join(config.species)} {config.lattice.upper()} CE ({config.source})")
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
