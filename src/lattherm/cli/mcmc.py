"""`lattherm mcmc ...` commands: MCMC reference tables and free energies.

    lattherm mcmc run --system ising.yaml --size 8x8 --seed 0 --out table.csv
    lattherm mcmc mchammer --settings phase_diagram.yaml --concentration 0.5 --seed 0 --out table.csv
    lattherm mcmc integrate --table table.csv --out free_energy.csv

``run`` and ``mchammer`` tables carry ``n_sites`` (and ``n_ones`` when canonical), which
``integrate`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lattherm.cli.options import ALLOYS, SIZE, SYSTEM, system_from
from lattherm.errors import LatthermError
from lattherm.io import load_yaml, read_table, table_path, write_table
from lattherm.mcmc.integration import METHODS, integrate_scan
from lattherm.mcmc.samplers import reference_scan

app = typer.Typer(no_args_is_help=True)


@app.command()
def run(
    system: Path = SYSTEM,
    size: Optional[str] = SIZE,
    alloys: Path = ALLOYS,
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """Batched torch MCMC scan of a system as its `mcmc` block asks, from T = inf down."""
    table_path(out)
    table = reference_scan(system_from(system, size, alloys), seed)
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command()
def mchammer(
    settings: Path = typer.Option(..., help="Phase-diagram block (fields of PhaseDiagramConfig, YAML or JSON)."),
    alloys: Path = ALLOYS,
    concentration: Optional[float] = typer.Option(None, help="Canonical scan at this fraction of species 1."),
    dmu: Optional[float] = typer.Option(None, help="Semi-grand scan at this dmu (eV)."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """mchammer scan of an alloy's CE at one concentration or dmu: energies, order parameters."""
    from lattherm.mcmc.mchammer_runs import PhaseDiagramConfig

    table_path(out)
    if (concentration is None) == (dmu is None):
        raise LatthermError("give exactly one of --concentration (canonical) and --dmu (semi-grand)")
    config = PhaseDiagramConfig.from_dict(load_yaml(settings, mapping=True), where=str(settings))
    ensemble, point = ("canonical", concentration) if dmu is None else ("semi_grand", dmu)
    table = config.scan(alloys / f"{config.alloy}.json", ensemble, point, seed)
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command()
def integrate(
    table: Path = typer.Option(..., help="Scan table from T = inf (beta = 0) with n_sites (and n_ones if canonical)."),
    out: Path = typer.Option(..., help="Output free-energy table (.csv or .parquet)."),
    method: str = typer.Option("spline", help=f"Quadrature, one of {METHODS}."),
) -> None:
    """Free energy by thermodynamic integration of <E>(beta) from beta = 0."""
    table_path(out)
    result = integrate_scan(read_table(table, ["beta", "energy", "energy_err", "n_sites"]), str(table), method)
    write_table(out, result)
    typer.echo(f"wrote {len(result)} rows to {out}")
