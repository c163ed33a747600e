"""`lattherm exact ...` commands: exact reference tables.

    lattherm exact kaufman --size 16 16 --temperatures 2.0,2.269,2.5 --out kaufman.csv
    lattherm exact enumerate --system system.yaml --temperatures 1.6,2.269 --out exact.csv

Lists of temperatures (or betas) are one argument, separated by commas or spaces.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import typer

from lattherm.exact.enumeration import MAX_SITES, exact_thermo
from lattherm.exact.kaufman import ising_thermo
from lattherm.io import write_table
from lattherm.systems import load_system

app = typer.Typer(no_args_is_help=True)


def _parse_list(text: str, name: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in re.split(r"[,\s]+", text.strip()) if v], dtype=np.float64)
    except ValueError as exc:
        raise typer.BadParameter(f"{name} must be numbers separated by commas or spaces, got {text!r}") from exc
    if values.size == 0:
        raise typer.BadParameter(f"{name} is empty")
    return values


def _inverse_temperatures(temperatures: Optional[str], betas: Optional[str], to_beta) -> np.ndarray:
    """Betas from exactly one of --temperatures / --betas."""
    if (temperatures is None) == (betas is None):
        raise typer.BadParameter("give exactly one of --temperatures and --betas")
    if betas is not None:
        values = _parse_list(betas, "--betas")
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise typer.BadParameter(f"--betas must be finite and >= 0, got {betas!r}")
        return values
    values = _parse_list(temperatures, "--temperatures")
    if not np.all(values > 0):  # inf is allowed: beta = 0
        raise typer.BadParameter(f"--temperatures must be positive (inf allowed), got {temperatures!r}")
    return np.array([to_beta(t) for t in values])


@app.command()
def kaufman(
    size: Tuple[int, int] = typer.Option(..., help="Periodic lattice L1 L2."),
    temperatures: Optional[str] = typer.Option(None, help="Temperatures in J/k_B, e.g. '2.0,2.269,2.5'."),
    betas: Optional[str] = typer.Option(None, help="Inverse temperatures in 1/J (instead of --temperatures)."),
    J: float = typer.Option(1.0, "--J", help="Coupling J > 0."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """Exact finite-lattice 2D Ising thermodynamics (Kaufman), h = 0."""
    beta_values = _inverse_temperatures(temperatures, betas, lambda t: 1.0 / t)
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
    sys_ = load_system(system)
    if sys_.n_sites > MAX_SITES:
        raise typer.BadParameter(f"system {sys_.name!r} has {sys_.n_sites} sites; enumeration allows {MAX_SITES}")
    beta_values = _inverse_temperatures(temperatures, betas, sys_.beta)
    table = exact_thermo(sys_.hamiltonian, beta_values, n_ones=sys_.n_ones)
    # Temperatures in the system's own unit (kelvin for cluster expansions), not 1 / beta.
    table["temperature"] = [np.inf if b == 0 else sys_.temperature(b) for b in beta_values]
    table.insert(0, "system", sys_.name)
    table.insert(1, "ensemble", sys_.ensemble)
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")
