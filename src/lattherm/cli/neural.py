"""`lattherm neural ...` commands: train neural samplers, and sample them on any cell of their system.

    lattherm neural train --system ising.yaml --model model.yaml --training training.yaml --out-dir runs/a
    lattherm neural sample --checkpoint runs/a/checkpoint.pt --system ising.yaml --samples 10000 --out estimates.csv
    lattherm neural sample --checkpoint runs/a/checkpoint.pt --system ising.yaml --size 16x16 \\
        --finetune-steps 50 --out transfer.csv
    lattherm neural grid --checkpoint runs/x/checkpoint.pt --system cuau.yaml --size 4x4x8 \\
        --concentrations 0.25,0.5 --temperatures 500,800 --finetune-steps 20 --out grid.csv
    lattherm neural overlap --checkpoint runs/a/checkpoint.pt --system spin_glass.yaml --samples 20000 --out overlap.csv

A model is evaluated at its training temperature, or (temperature-conditioned) at the system's
temperatures within its trained range. ``train`` saves its progress every ``checkpoint_every``
steps to PROGRESS_DIR (default OUT_DIR/.progress: not an output, so a workflow manager that
deletes the outputs of an interrupted job leaves it), writes checkpoint.pt, log.csv and
summary.json to OUT_DIR at the end and removes the progress files. It resumes from the progress
or OUT_DIR's checkpoint, whichever is further along, when the settings match; on SIGTERM it saves
its progress and exits with status 143. Every checkpoint records its system's Hamiltonian, and
`sample` refuses another one (on a larger cell, a spin glass's coupling draw may differ).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
import typer

from lattherm.cli.options import ALLOYS, SYSTEM, TEMPERATURES, parse_concentrations, parse_temperatures, system_from
from lattherm.errors import LatthermError
from lattherm.io import load_yaml, table_path, write_json, write_table
from lattherm.lattices import size_tag
from lattherm.models import build_model, model_spec
from lattherm.models.symmetric import resolve_lattice_symmetric
from lattherm.training import TrainConfig, load_trained_model, resolve_device, system_description, train
from lattherm.training.distributed import init_from_environment
from lattherm.training.variational import training_conditioning
from lattherm.transfer import transfer, transfer_grid

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train_command(
    system: Path = SYSTEM,
    alloys: Path = ALLOYS,
    model: Path = typer.Option(..., help="Model YAML: {kind: made | transformer, ...hyperparameters}."),
    training: Path = typer.Option(..., help="Training YAML (fields of lattherm.training.TrainConfig)."),
    out_dir: Path = typer.Option(..., help="Writes checkpoint.pt, log.csv and summary.json here at the end."),
    progress_dir: Optional[Path] = typer.Option(
        None, help="Periodic checkpoint.pt and log.csv of the unfinished run, removed at the end "
        "(default: OUT_DIR/.progress; not an output, so a workflow manager keeps it)."),
) -> None:
    """Train a sampler on the system's training cell by minimising the variational free energy;
    resumes an interrupted run (from PROGRESS_DIR) or extends a finished one (from OUT_DIR).
    Exits with status 143 on SIGTERM, after saving its progress. Data-parallel under torchrun
    (`torchrun --standalone --nproc-per-node 2 --no-python lattherm neural train ...`, with
    `shards` in the training settings a multiple of the processes): rank 0 writes the files."""
    sys_obj = system_from(system, None, alloys)
    spec = load_yaml(model, mapping=True)
    config = TrainConfig.from_dict(load_yaml(training) or {})
    distributed = init_from_environment(resolve_device(config.device))
    torch.manual_seed(config.seed)
    conditioning = training_conditioning(config, sys_obj)
    # a conditioned run conditions the model on its ranges: the model block need not say so
    spec.setdefault("n_cond", 0 if conditioning is None else len(conditioning.variables))
    net = build_model(spec, sys_obj.cell)
    result = train(net, sys_obj, config, out_dir, progress_dir=progress_dir)
    if distributed:
        torch.distributed.destroy_process_group()
    if os.environ.get("RANK", "0") != "0":
        return
    last = result.log.iloc[-1].to_dict()
    write_json(out_dir / "summary.json", {
        "system": system_description(sys_obj), "model": model_spec(result.model),
        "n_parameters": sum(p.numel() for p in result.model.parameters()),
        "training": vars(config), "final": last,
    })
    typer.echo(f"step {int(last['step'])}: F_q = {last['F_q']:.6g}, F_IS = {last['F_IS']:.6g}, ESS = {last['ESS']:.3f}")


@app.command()
def sample(
    checkpoint: Path = typer.Option(..., help="checkpoint.pt written by `lattherm neural train`."),
    system: Path = SYSTEM,
    size: Optional[str] = typer.Option(None, help="A larger cell of the system, e.g. 16x16, to transfer the model "
                                                  "to (default: the training cell)."),
    alloys: Path = ALLOYS,
    temperatures: Optional[str] = TEMPERATURES,
    finetune_steps: int = typer.Option(0, help="Variational fine-tuning steps on the cell first, per temperature."),
    samples: int = typer.Option(10000, help="Samples for importance weighting per temperature."),
    mcmc_chains: int = typer.Option(64, help="Neural-MCMC chains."),
    mcmc_steps: int = typer.Option(200, help="Neural-MCMC steps per chain."),
    z2_symmetric: bool = typer.Option(False, "--z2-symmetric/--no-z2-symmetric",
                                      help="Sample the spin-flip symmetrised model (zero-field spin systems)."),
    lattice_symmetric: str = typer.Option("false", help="true | false | auto: sample the mixture over the cell's "
                                                        "point group, also a model trained without it (one "
                                                        "log_prob pass per operation; auto: cluster expansions)."),
    method: Optional[str] = typer.Option(None, help="Label of the estimates in the table's method column "
                                                    "(default: the model kind)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    out: Path = typer.Option(..., help="Estimates table (.csv or .parquet), one row per temperature."),
) -> None:
    """Free energy (IS), ESS, F_q, neural-MCMC energy, C_v and order parameters of a trained model
    on its training cell or, transferred (and optionally fine-tuned), on a larger cell."""
    table_path(out)
    chosen = parse_temperatures(temperatures)
    if lattice_symmetric not in ("true", "false", "auto"):
        raise LatthermError(f"--lattice-symmetric must be true, false or auto, got {lattice_symmetric!r}")
    sys_obj = system_from(system, size, alloys)
    lattice_symmetric = resolve_lattice_symmetric(
        lattice_symmetric if lattice_symmetric == "auto" else lattice_symmetric == "true", sys_obj)
    loaded = load_trained_model(checkpoint, sys_obj, same_size=False)
    rows = [transfer(checkpoint, sys_obj, temperature=t, finetune_steps=finetune_steps, n_samples=samples,
                     mcmc_chains=mcmc_chains, mcmc_steps=mcmc_steps, seed=seed, device=device,
                     progress=sys.stderr.isatty(), z2_symmetric=z2_symmetric, lattice_symmetric=lattice_symmetric)
            for t in chosen or loaded.evaluation_temperatures(sys_obj.config.temperatures)]
    write_table(out, _labelled(rows, sys_obj, method or loaded.checkpoint["model_spec"]["kind"]))


@app.command()
def grid(
    checkpoint: Path = typer.Option(..., help="checkpoint.pt of a model conditioned on temperature and composition."),
    system: Path = SYSTEM,
    size: Optional[str] = typer.Option(None, help="The cell, e.g. 4x4x8 (default: the training cell)."),
    alloys: Path = ALLOYS,
    concentrations: str = typer.Option(..., help="Fractions of species 1, e.g. '0.25,0.5' (whole numbers of sites)."),
    temperatures: Optional[str] = typer.Option(None, help="Temperatures, e.g. '500,800' (default: the system's)."),
    finetune_steps: int = typer.Option(0, help="Variational fine-tuning steps on the cell first, once, over the "
                                               "trained ranges."),
    finetune_lr: Optional[float] = typer.Option(None, help="Fine-tuning learning rate (default: a tenth of the "
                                                           "training rate)."),
    samples: int = typer.Option(10000, help="Samples for importance weighting per point."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    out: Path = typer.Option(..., help="Estimates table (.csv or .parquet), one row per (concentration, temperature)."),
) -> None:
    """Importance-sampled F(x, T), its error and the ESS of one composition- and temperature-
    conditioned model at every point of a grid, on its training cell or, transferred (and
    fine-tuned once), on a larger cell of the system (the system file's concentration is replaced)."""
    from dataclasses import replace

    from lattherm.systems import build_system, load_system_config

    table_path(out)
    xs = parse_concentrations(concentrations)
    chosen = parse_temperatures(temperatures)
    base = system_from(system, size, alloys)
    config = load_system_config(system)
    if base.ensemble != "canonical":
        raise LatthermError(f"--system {system}: a composition grid needs a canonical system, it is {base.ensemble}")
    ce_file = alloys / f"{config.alloy}.json" if config.alloy is not None else None
    systems = {}
    for x in xs:
        count = x * base.n_sites
        if abs(count - round(count)) > 1e-9:
            raise LatthermError(f"--concentrations value {x:g} gives {count:g} species-1 sites of {base.n_sites}; "
                                "it must give a whole number")
        systems[x] = build_system(replace(config, concentration=x), base.size, ce_file, name=base.name)
    chosen = chosen or config.temperatures
    if not chosen:
        raise LatthermError(f"--system {system} has no temperatures; give --temperatures")
    rows = transfer_grid(checkpoint, systems, chosen, finetune_steps=finetune_steps, finetune_lr=finetune_lr,
                         n_samples=samples, seed=seed, device=device, progress=sys.stderr.isatty())
    write_table(out, _labelled(rows, base, "neural_grid"))
    typer.echo(f"wrote {len(rows)} rows to {out}")


@app.command()
def overlap(
    checkpoint: Path = typer.Option(..., help="checkpoint.pt written by `lattherm neural train`."),
    system: Path = SYSTEM,
    alloys: Path = ALLOYS,
    temperatures: Optional[str] = TEMPERATURES,
    samples: int = typer.Option(10000, help="Samples per temperature, paired into samples / 2 replica pairs."),
    method: Optional[str] = typer.Option(None, help="Label of the rows in the method column (default: the model kind)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    out: Path = typer.Option(..., help="P(q) table (.csv or .parquet): temperature, q, probability (and its error), "
                             "n_eff."),
) -> None:
    """Replica-overlap distribution P(q) of a trained model on its training cell: overlaps of
    disjoint pairs of its samples, each pair importance-weighted to the Boltzmann distribution."""
    from lattherm.exact.overlap import overlap_values, susceptibility
    from lattherm.sampling.overlap import histogram_errors, sampler_overlaps

    table_path(out)
    chosen = parse_temperatures(temperatures)
    sys_obj = system_from(system, None, alloys)
    loaded = load_trained_model(checkpoint, sys_obj, resolve_device(device))
    tables = []
    for t in chosen or loaded.evaluation_temperatures(sys_obj.config.temperatures):
        distribution, n_eff = sampler_overlaps(loaded.model, sys_obj, t, samples, loaded.conditioning, seed)
        tables.append(pd.DataFrame({"temperature": t, "beta": sys_obj.beta(t), "q": overlap_values(sys_obj.n_sites),
                                    "probability": distribution,
                                    "probability_err": histogram_errors(distribution, n_eff), "n_eff": n_eff,
                                    "chi_sg": susceptibility(distribution, sys_obj.n_sites)}))
    rows = pd.concat(tables, ignore_index=True).to_dict("records")
    write_table(out, _labelled(rows, sys_obj, method or loaded.checkpoint["model_spec"]["kind"]))
    typer.echo(f"wrote {len(rows)} rows to {out}")


def _labelled(rows: list[dict], system, method: str) -> pd.DataFrame:
    """Estimates that say what they are: system, method and cell size columns first."""
    table = pd.DataFrame(rows)
    for i, (name, value) in enumerate({"system": system.name, "method": method, "size": size_tag(system.size)}.items()):
        table.insert(i, name, value)
    return table
