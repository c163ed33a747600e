"""`lattherm mcmc ...` commands: MCMC reference tables and free energies.

    lattherm mcmc run --system system.yaml --temperatures 2.0,2.269,3.0 --chains 64 --sweeps 2000 \
        --move flip --seed 0 --out table.csv
    lattherm mcmc mchammer --ce model.json --size 4 4 4 --lattice fcc_cubic --ensemble canonical \
        --concentration 0.5 --temperatures 600,800 --steps-per-site 500 --seed 0 --out table.csv
    lattherm mcmc integrate --table table.csv --out free_energy.csv

Lists of temperatures (or betas) are one argument, separated by commas or spaces. ``run`` and
``mchammer`` tables carry ``n_sites`` (and ``n_ones`` when canonical), which ``integrate`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pandas as pd
import typer

from lattherm.cli.options import inverse_temperatures, parse_list, temperature_grid
from lattherm.errors import LatthermError
from lattherm.io import read_table, table_path, write_table
from lattherm.lattices import make_lattice
from lattherm.mcmc.integration import METHODS, integrate_free_energy
from lattherm.mcmc.samplers import MOVES, scan
from lattherm.observables import standard_observables
from lattherm.systems import build_system, load_spec

app = typer.Typer(no_args_is_help=True)


@app.command()
def run(
    system: Path = typer.Option(..., help="System YAML (see lattherm.systems)."),
    temperatures: Optional[str] = typer.Option(None, help="Temperatures (J/k_B for spins, K for CE)."),
    betas: Optional[str] = typer.Option(None, help="Inverse temperatures (may include 0, for integration)."),
    chains: int = typer.Option(64, help="Independent chains per temperature."),
    sweeps: int = typer.Option(2000, help="Sweeps per chain (flip/swap: N trials; wolff: one cluster)."),
    burn_in: int = typer.Option(200, help="Sweeps before recording."),
    thin: int = typer.Option(1, help="Record every thin-th sweep."),
    move: Optional[str] = typer.Option(None, help=f"One of {tuple(MOVES)}; default swap if canonical, else flip."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """Batched torch MCMC temperature scan of a system: energies, heat capacity, observables."""
    table_path(out)
    grid = temperature_grid(temperatures, betas)
    if chains < 1 or thin < 1 or burn_in < 0:
        raise LatthermError(f"--chains and --thin must be >= 1 and --burn-in >= 0, got --chains {chains}, "
                            f"--thin {thin}, --burn-in {burn_in}")
    records = -(-(sweeps - burn_in) // thin)
    if records < 128:  # as mcmc.samplers.scan requires
        raise LatthermError(f"--sweeps {sweeps} with --burn-in {burn_in} and --thin {thin} records {max(records, 0)} "
                            "sweeps per chain; a scan needs at least 128")
    spec = load_spec(system)
    move = move or ("swap" if spec["ensemble"] == "canonical" else "flip")
    if move not in MOVES:
        raise LatthermError(f"--move must be one of {tuple(MOVES)}, got {move!r}")
    if MOVES[move].ensemble != spec["ensemble"]:
        fitting = [name for name, kind in MOVES.items() if kind.ensemble == spec["ensemble"]]
        raise LatthermError(f"the {spec['ensemble']} system {spec['name']!r} cannot use --move {move}, which samples "
                            f"the {MOVES[move].ensemble} ensemble; use --move {' or '.join(fitting)}")
    sys_ = build_system(spec)
    try:
        MOVES[move].check(sys_.hamiltonian, sys_.n_ones)
    except ValueError as err:  # e.g. Wolff clusters on a spin glass
        raise LatthermError(f"--move {move} cannot sample the system {sys_.name!r}: {err}") from None
    beta_values = inverse_temperatures(grid, sys_.beta)
    table = scan(sys_.hamiltonian, beta_values, chains, sweeps, move=move, n_ones=sys_.n_ones, burn_in=burn_in,
                 thin=thin, seed=seed, observables=standard_observables(sys_.lattice),
                 temperatures=[np.inf if b == 0 else sys_.temperature(b) for b in beta_values])
    table.insert(0, "system", sys_.name)
    table.insert(1, "ensemble", sys_.ensemble)
    table.insert(2, "move", move)
    table["n_sites"] = sys_.n_sites
    if sys_.n_ones is not None:
        table["n_ones"] = sys_.n_ones
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command()
def mchammer(
    ce: Path = typer.Option(..., help="Cluster expansion in lattherm's JSON format (lattherm ce fit/convert)."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle",
                                      help="Accept an icet .ce file (pickles: only from a trusted source)."),
    lattice_constant: Optional[float] = typer.Option(
        None, help="Cubic lattice constant (Å) expected of the CE; default: the CE's own."),
    size: Tuple[int, int, int] = typer.Option(..., help="Supercell repeats n1 n2 n3."),
    lattice: str = typer.Option("fcc_cubic", help="fcc, fcc_cubic, bcc or bcc_cubic (primitive or conventional cells)."),
    ensemble: str = typer.Option("canonical", help="canonical or semi_grand."),
    concentration: Optional[float] = typer.Option(None, help="Fraction of species 1 (canonical)."),
    dmu: Optional[float] = typer.Option(None, help="Field in E - dmu sum s, eV (semi_grand)."),
    temperatures: str = typer.Option(..., help="Temperatures in K, run in the given order."),
    steps_per_site: int = typer.Option(500, help="Trial steps per site at each temperature."),
    species: str = typer.Option("Cu,Au", help="Species for x = 0 and x = 1."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(..., help="Output table (.csv or .parquet)."),
) -> None:
    """mchammer scan of a cluster expansion: energies, order parameters, short-range order."""
    from lattherm.ce.storage import check_lattice, parent_lattice, read_cluster_expansion
    from lattherm.mcmc.mchammer_runs import run_scan

    lattices = ("fcc", "fcc_cubic", "bcc", "bcc_cubic")
    if lattice not in lattices:
        raise typer.BadParameter(f"--lattice must be one of {lattices}, got {lattice!r}")
    model = read_cluster_expansion(ce, allow_pickle=trust_pickle)
    lat = make_lattice(lattice, size, a=parent_lattice(model)[1] if lattice_constant is None else lattice_constant)
    check_lattice(model, lat, ce)
    symbols = [s.strip() for s in species.split(",")]
    table = run_scan(model, lat, parse_list(temperatures, "--temperatures"), ensemble, concentration=concentration,
                     dmu=dmu, steps_per_site=steps_per_site, species=symbols, seed=seed)
    table["n_sites"] = lat.n_sites
    if ensemble == "canonical":
        table["n_ones"] = int(round(concentration * lat.n_sites))
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command()
def integrate(
    table: Path = typer.Option(..., help="Table with beta, energy, energy_err (e.g. from `mcmc run --betas 0,...`)."),
    out: Path = typer.Option(..., help="Output free-energy table (.csv or .parquet)."),
    n_sites: Optional[int] = typer.Option(None, help="Sites N (default: the table's n_sites column)."),
    n_ones: Optional[int] = typer.Option(None, help="Canonical species-1 count (default: the table's n_ones)."),
    method: str = typer.Option("spline", help=f"Quadrature, one of {METHODS}."),
) -> None:
    """Free energy by thermodynamic integration of <E>(beta) from beta = 0."""
    table_path(out)
    if method not in METHODS:
        raise LatthermError(f"--method must be one of {METHODS}, got {method!r}")
    columns = ["beta", "energy", "energy_err"]
    data = read_table(table, columns)
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(data[c])]
    if text:
        raise LatthermError(f"table {table} has non-numeric column(s) {text}")
    data = data.sort_values("beta")
    n_sites = n_sites if n_sites is not None else _single_value(data, "n_sites", table)
    if n_ones is None and "n_ones" in data.columns:
        n_ones = _single_value(data, "n_ones", table)
    result = integrate_free_energy(data.beta, data.energy, n_sites, n_ones=n_ones, energy_errors=data.energy_err,
                                   method=method)
    # One table per scan: the free energies next to the scan's own columns (energies, heat
    # capacities, order parameters; temperature in the system's unit, e.g. kelvin for a CE).
    scan_columns = data.iloc[1:].reset_index(drop=True)
    scan_columns = scan_columns[[c for c in scan_columns.columns if c not in result.columns or c == "temperature"]]
    result = pd.concat([result.drop(columns="temperature"), scan_columns], axis=1)
    if "ensemble" not in result.columns:
        result.insert(0, "ensemble", "unconstrained" if n_ones is None else "canonical")
    write_table(out, result)
    typer.echo(f"wrote {len(result)} rows to {out}")


def _single_value(data, column: str, path: Path) -> int:
    if column not in data.columns:
        raise LatthermError(f"table {path} has no {column!r} column; pass --{column.replace('_', '-')}")
    values = data[column].unique()
    if len(values) != 1:
        raise LatthermError(f"table {path} mixes several {column} values {values.tolist()}")
    if not (pd.api.types.is_number(values[0]) and float(values[0]).is_integer()):
        raise LatthermError(f"table {path} has {column} = {values[0]}; expected a whole number")
    return int(values[0])
