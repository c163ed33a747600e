"""`lattherm exact reference`: the exact thermodynamics of a system, where one exists.

    lattherm exact reference --system ising.yaml --size 16x16 --out kaufman_16x16.csv
    lattherm exact overlap --system spin_glass.yaml --out overlap_exact_4x4.csv

Kaufman's solution for the zero-field square Ising model (any size), enumeration for cells of
at most ENUMERATE_MAX_SITES sites; at the system's temperatures and MCMC temperatures. ``overlap``
gives a spin glass's exact replica-overlap distribution P(q) by enumeration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lattherm.cli.options import ALLOYS, SIZE, SYSTEM, TABLE_OUT, system_from
from lattherm.exact import MAX_ENUMERATED_SITES, reference_table
from lattherm.exact.overlap import overlap_reference_table
from lattherm.io import table_path, write_table

app = typer.Typer(no_args_is_help=True)
ENUMERATE_MAX_SITES = typer.Option(MAX_ENUMERATED_SITES, help="Enumerate cells of at most this many sites.")


@app.command()
def reference(
    system: Path = SYSTEM,
    size: Optional[str] = SIZE,
    alloys: Path = ALLOYS,
    enumerate_max_sites: int = ENUMERATE_MAX_SITES,
    out: Path = TABLE_OUT,
) -> None:
    """Exact free energy, energy, heat capacity (and magnetisation) per temperature."""
    table_path(out)
    table = reference_table(system_from(system, size, alloys), enumerate_max_sites)
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows ({table['method'].iloc[0]}) to {out}")


@app.command()
def overlap(
    system: Path = SYSTEM,
    size: Optional[str] = SIZE,
    alloys: Path = ALLOYS,
    enumerate_max_sites: int = ENUMERATE_MAX_SITES,
    out: Path = TABLE_OUT,
) -> None:
    """Exact overlap distribution P(q) of two replicas, and chi_SG, per temperature (enumeration)."""
    table_path(out)
    table = overlap_reference_table(system_from(system, size, alloys), enumerate_max_sites)
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")
