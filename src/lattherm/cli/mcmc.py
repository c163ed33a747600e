"""`lattherm mcmc ...` commands: MCMC reference tables and free energies.

    lattherm mcmc run --system ising.yaml --size 8x8 --seed 0 --out table.csv --out-samples samples.parquet
    lattherm mcmc canonical --settings phase_diagram.yaml --concentration 0.5 --seed 0 --out table.csv \
        --out-samples samples.parquet --out-structures x0.5.extxyz
    lattherm mcmc semi-grand --settings phase_diagram.yaml --direction up --seed 0 --out semi_grand_up.csv
    lattherm mcmc mchammer --settings phase_diagram.yaml --concentration 0.5 --seed 0 --out table.csv
    lattherm mcmc integrate --table table.csv --samples samples.parquet --out free_energy.csv
    lattherm mcmc integrate --table table.csv --estimator spline --out free_energy.csv
    lattherm mcmc tempering --system spin_glass.yaml --seed 0 --out overlap_pt.csv --out-summary pt.csv
    lattherm mcmc vcsgc --settings phase_diagram.yaml --temperature 600 --seed 0 --out vcsgc_T600.csv \
        --out-histograms vcsgc_T600_histograms.csv

``run``, ``canonical`` and ``mchammer`` tables carry ``n_sites`` (and ``n_ones`` when canonical), which
``integrate`` reads; ``run`` and ``canonical`` also write their recorded energies, from which ``integrate`` gets
MBAR free energies (no quadrature error); without them it integrates <E>(beta) on the grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lattherm.cli.options import ALLOYS, SIZE, SYSTEM, TABLE_OUT, system_from
from lattherm.errors import LatthermError
from lattherm.io import load_yaml, read_table, table_path, write_table
from lattherm.mcmc.integration import METHODS, integrate_scan
from lattherm.mcmc.mbar import SAMPLE_COLUMNS, mbar_scan
from lattherm.mcmc.samplers import overlap_tempering, reference_scan

app = typer.Typer(no_args_is_help=True)


def _phase_diagram_settings(settings: Path):
    """The phase-diagram block in ``settings`` (YAML or JSON), validated; errors name the file."""
    from lattherm.mcmc.phase_scans import PhaseDiagramConfig

    return PhaseDiagramConfig.from_dict(load_yaml(settings, mapping=True), where=str(settings))


@app.command()
def run(
    system: Path = SYSTEM,
    size: Optional[str] = SIZE,
    alloys: Path = ALLOYS,
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = TABLE_OUT,
    out_samples: Optional[Path] = typer.Option(None, help="Also write the recorded energies (.parquet or .csv), "
                                                           "for MBAR free energies."),
) -> None:
    """Batched torch MCMC scan of a system as its `mcmc` block asks, from T = inf down."""
    table_path(out)
    if out_samples is not None:
        table_path(out_samples)
    table, samples = reference_scan(system_from(system, size, alloys), seed)
    write_table(out, table)
    if out_samples is not None:
        write_table(out_samples, samples)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command()
def tempering(
    system: Path = SYSTEM,
    size: Optional[str] = SIZE,
    alloys: Path = ALLOYS,
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(..., help="Replica-overlap distribution P(q) per temperature (.csv or .parquet)."),
    out_summary: Path = typer.Option(..., help="Per temperature: chi_SG, exchange acceptance, equilibration check."),
) -> None:
    """Parallel tempering over the system's mcmc.temperatures, chains paired into replicas: P(q)."""
    for path in (out, out_summary):
        table_path(path)
    histograms, summary = overlap_tempering(system_from(system, size, alloys), seed)
    write_table(out, histograms)
    write_table(out_summary, summary)
    typer.echo(f"wrote {len(histograms)} rows to {out}")


@app.command()
def canonical(
    settings: Path = typer.Option(..., help="Phase-diagram block (fields of PhaseDiagramConfig, YAML or JSON)."),
    alloys: Path = ALLOYS,
    concentration: float = typer.Option(..., help="Fraction of species 1, fixed."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = TABLE_OUT,
    out_samples: Path = typer.Option(..., help="The recorded energies (.parquet or .csv), for MBAR free energies."),
    out_structures: Optional[Path] = typer.Option(None, help="Also write the lowest-energy final configuration at "
                                                             "each temperature (.extxyz or .cif)."),
) -> None:
    """Canonical scan of an alloy's CE at one concentration: parallel tempering from T = inf down (torch MCMC)."""
    for path in (out, out_samples):
        table_path(path)
    config = _phase_diagram_settings(settings)
    ce_file = alloys / f"{config.alloy}.json"
    result = config.canonical(ce_file, concentration, seed)
    write_table(out, result.table)
    write_table(out_samples, result.samples)
    if out_structures is not None:
        _write_structures(out_structures, config, ce_file, result.table, result.final, "concentration", concentration)
    typer.echo(f"wrote {len(result.table)} rows to {out}")


@app.command("semi-grand")
def semi_grand(
    settings: Path = typer.Option(..., help="Phase-diagram block (fields of PhaseDiagramConfig, YAML or JSON)."),
    alloys: Path = ALLOYS,
    direction: str = typer.Option(..., help="up (dmu increasing from pure species 0) or down (decreasing from "
                                            "pure species 1)."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = TABLE_OUT,
) -> None:
    """Semi-grand x(dmu) scan of an alloy's CE at each semi_grand_temperatures, chains carried from dmu to dmu."""
    table_path(out)
    config = _phase_diagram_settings(settings)
    table = config.semi_grand(alloys / f"{config.alloy}.json", direction, seed)
    write_table(out, table)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command()
def mchammer(
    settings: Path = typer.Option(..., help="Phase-diagram block (fields of PhaseDiagramConfig, YAML or JSON)."),
    alloys: Path = ALLOYS,
    concentration: Optional[float] = typer.Option(None, help="Canonical scan at this fraction of species 1."),
    dmu: Optional[float] = typer.Option(None, help="Semi-grand scan at this dmu (eV)."),
    direction: str = typer.Option("cooling", help="cooling (down from a random start) or heating (canonical: up "
                                                  "from the perfect ordered phase)."),
    steps_per_site: int = typer.Option(200, min=1, help="mchammer trial steps per site and temperature."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = TABLE_OUT,
    out_samples: Optional[Path] = typer.Option(None, help="Also write the recorded energies, for MBAR."),
    out_structures: Optional[Path] = typer.Option(None, help="Also write the last configuration at each "
                                                             "temperature (.extxyz or .cif)."),
) -> None:
    """mchammer scan (the external reference) of an alloy's CE at one concentration or dmu, on the block's cell."""
    from lattherm.mcmc.mchammer_runs import phase_diagram_scan

    for path in (out, out_samples):
        if path is not None:
            table_path(path)
    if (concentration is None) == (dmu is None):
        raise LatthermError("give exactly one of --concentration (canonical) and --dmu (semi-grand)")
    config = _phase_diagram_settings(settings)
    ensemble, key, point = ("canonical", "concentration", concentration) if dmu is None else ("semi_grand", "dmu", dmu)
    ce_file = alloys / f"{config.alloy}.json"
    result = phase_diagram_scan(config, ce_file, ensemble, point, steps_per_site, seed, direction)
    write_table(out, result.table)
    if out_samples is not None:
        write_table(out_samples, result.samples)
    if out_structures is not None:
        _write_structures(out_structures, config, ce_file, result.table, result.final, key, point, direction)
    typer.echo(f"wrote {len(result.table)} rows to {out}")


def _write_structures(path: Path, config, ce_file: Path, table, configurations, key: str, point: float,
                      direction: str = "cooling") -> None:
    """One configuration per temperature of a scan as structures, each frame naming its point."""
    from lattherm.ce.storage import ce_species, read_cluster_expansion
    from lattherm.phases import write_structures

    info = [{"temperature": float(t), "direction": direction, key: point} for t in table.temperature]
    write_structures(path, config.lattice_of(ce_file), configurations, ce_species(read_cluster_expansion(ce_file)), info)


@app.command()
def transition(
    settings: Path = typer.Option(..., help="Phase-diagram block (fields of PhaseDiagramConfig, YAML or JSON)."),
    alloys: Path = ALLOYS,
    concentration: float = typer.Option(..., help="An ordered composition (L1_2: 0.25, 0.75; L1_0: 0.5)."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(..., help="One row: T_c by free-energy crossing, its errors, the hysteresis bracket."),
    out_heating: Path = typer.Option(..., help="The ordered branch as a heating scan (one row per temperature)."),
    out_branches: Path = typer.Option(..., help="Both branches: energies, ln Z and free energies with MBAR errors."),
) -> None:
    """T_c of an ordered phase where its free energy crosses the disordered phase's (torch MCMC)."""
    for path in (out, out_heating, out_branches):
        table_path(path)
    config = _phase_diagram_settings(settings)
    heating, branches, crossing = config.transition(alloys / f"{config.alloy}.json", concentration, seed)
    write_table(out_heating, heating)
    write_table(out_branches, branches)
    write_table(out, crossing)
    row = crossing.iloc[0]
    typer.echo(f"{row.phase} at x = {concentration}: T_c = {row.t_c:.1f} +- {row.t_c_err:.1f} K "
               f"(extrapolation {row.t_c_extrapolation:.1f} K) {row.reason}")


@app.command()
def vcsgc(
    settings: Path = typer.Option(..., help="Phase-diagram block (fields of PhaseDiagramConfig, YAML or JSON): "
                                            "the alloy, the cell and the vcsgc_* settings."),
    alloys: Path = ALLOYS,
    temperature: float = typer.Option(..., help="Temperature (K), one of the block's vcsgc_temperatures."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = TABLE_OUT,
    out_histograms: Path = typer.Option(..., help="The composition histograms per phi and chain (.csv or .parquet), "
                                                  "for F(c) by reweighting (`analysis phase-diagram`)."),
) -> None:
    """Variance-constrained semi-grand (VCSGC) phi scan at one temperature: <c> and dF/dc per phi, and the
    composition histograms that give F(c) (torch MCMC)."""
    for path in (out, out_histograms):
        table_path(path)
    config = _phase_diagram_settings(settings)
    table, histograms = config.vcsgc(alloys / f"{config.alloy}.json", temperature, seed)
    write_table(out, table)
    write_table(out_histograms, histograms)
    typer.echo(f"wrote {len(table)} rows to {out}")


@app.command()
def integrate(
    table: Path = typer.Option(..., help="Scan table from T = inf (beta = 0) with n_sites (and n_ones if canonical)."),
    samples: Optional[Path] = typer.Option(None, help="Recorded energies of the scan (`mcmc run --out-samples`)."),
    out: Path = typer.Option(..., help="Output free-energy table (.csv or .parquet)."),
    estimator: str = typer.Option("mbar", help=f"mbar (needs --samples) or a quadrature of <E>(beta), one of {METHODS}."),
) -> None:
    """Free energies of a scan from beta = 0: MBAR over its samples, or integration of <E>(beta)."""
    table_path(out)
    data = read_table(table, ["beta", "energy", "energy_err", "n_sites"])
    if estimator not in ("mbar", *METHODS):
        raise LatthermError(f"--estimator must be one of {('mbar', *METHODS)}, got {estimator!r}")
    if (estimator == "mbar") != (samples is not None):
        raise LatthermError("--samples goes with --estimator mbar (the default), and only with it")
    if estimator == "mbar":
        result = mbar_scan(data, read_table(samples, list(SAMPLE_COLUMNS)), str(table))
    else:
        result = integrate_scan(data, str(table), estimator)
    write_table(out, result)
    typer.echo(f"wrote {len(result)} rows to {out}")


@app.command("phase-sum")
def phase_sum_command(
    free: Path = typer.Option(..., help="Free-energy table of a canonical scan (`mcmc integrate`)."),
    branches: Path = typer.Option(..., help="The ordered and disordered branches at its composition "
                                  "(`mcmc transition --out-branches`)."),
    out: Path = typer.Option(..., help="Output free-energy table (.csv or .parquet)."),
) -> None:
    """A canonical scan's free energies with ln Z = ln(Z_ordered + Z_A1) wherever the branches
    reach: below a first-order T_c the ordered phase's weight comes from its exact anchor."""
    from lattherm.mcmc.coexistence import phase_sum

    table_path(out)
    result = phase_sum(read_table(free, ["temperature", "beta", "n_sites", "free_energy_per_site"]),
                       read_table(branches, ["phase", "temperature", "n_sites", "in_branch", "log_z", "log_z_err"]))
    write_table(out, result)
    changed = result.free_energy_estimator.eq("mbar phase sum").sum()
    typer.echo(f"wrote {len(result)} rows to {out} ({changed} from the sum over the phases)")
