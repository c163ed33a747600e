"""`lattherm exact ...` commands: exact reference tables.

    lattherm exact kaufman --size 16 16 --temperatures 2.0,2.269,2.5 --out kaufman.csv
    lattherm exact enumerate --system system.yaml --temperatures 1.6,2.269 --out exact.csv

Lists of temperatures (or betas) are one argument, separated by commas or spaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import typer

from lattherm.cli.options import inverse_temperatures, temperature_grid
from lattherm.errors import LatthermError
from lattherm.exact.enumeration import MAX_SITES, exact_thermo
from lattherm.exact.kaufman import ising_thermo
from lattherm.io import table_path, write_table
from lattherm.systems import build_system, load_spec, n_sites_of

app = typer.Typer(no_args_is_help=True)


@app.command()
def kaufman(
    size: Tuple[int, int] = typer.Option(..., help="Periodic lattice L1 L2."),
    temperatures: Optional[str] = typer.Option(None, help="Temperatures in J/k_B, e.g. '2.0,2.269,2.5'."),
    betas: Optional[str] = typer.Option(None, help="Inverse temperatures in 1/J (instead of --temperatures)."),
    J: float = typer.Option(1.0, "--J", help="Coupling J > 0."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """Exact finite-lattice 2D Ising thermodynamics (Kaufman), h = 0."""
    table_path(out)
    beta_values = inverse_temperatures(temperature_grid(temperatures, betas), lambda t: 1.0 / t)
    table = ising_thermo(size[0], size[1], beta_values, J=J)
    table.insert(0, "system", f"ising_square_{size[0]}x{size[1]}")
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command("enumerate")
def enumerate_command(
    system: Path = typer.Option(..., help="System YAML (see lattherm.systems)."),
    temperatures: Optional[str] = typer.Option(None, help="Temperatures (J/k_B for spins, K for CE)."),
    betas: Optional[str] = typer.Option(None, help="Inverse temperatures in inverse energy units."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """Brute-force thermodynamics of a system with at most 24 sites (canonical if the system is)."""
    table_path(out)
    grid = temperature_grid(temperatures, betas)
    spec = load_spec(system)
    if n_sites_of(spec) > MAX_SITES:
        raise LatthermError(f"system {spec['name']!r} in {system} has {n_sites_of(spec)} sites; enumeration "
                            f"allows at most {MAX_SITES}")
    sys_ = build_system(spec)
    beta_values = inverse_temperatures(grid, sys_.beta)
    table = exact_thermo(sys_.hamiltonian, beta_values, n_ones=sys_.n_ones)
    # Temperatures in the system's own unit (kelvin for cluster expansions), not 1 / beta.
    table["temperature"] = [np.inf if b == 0 else sys_.temperature(b) for b in beta_values]
    table.insert(0, "system", sys_.name)
    table.insert(1, "ensemble", sys_.ensemble)
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")
