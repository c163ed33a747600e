"""`lattherm neural ...` commands: train, sample and transfer neural samplers.

    lattherm neural train --system system.yaml --model model.yaml --training training.yaml --out-dir runs/a
    lattherm neural sample --checkpoint runs/a/checkpoint.pt --system system.yaml --samples 10000 \\
        --temperatures 2.0,2.269 --out estimates.csv
    lattherm neural transfer --checkpoint runs/a/checkpoint.pt --system big.yaml --finetune-steps 50 \\
        --out transfer.csv

``train`` saves its progress every ``checkpoint_every`` steps to PROGRESS_DIR (default
OUT_DIR/.progress: not an output, so a workflow manager that deletes the outputs of an
interrupted job leaves it), writes checkpoint.pt, log.csv and summary.json to OUT_DIR at the end
and removes the progress files. It resumes from the progress or OUT_DIR's checkpoint, whichever
is further along, when the settings match; on SIGTERM it saves its progress and exits with
status 143. Every checkpoint records its system's Hamiltonian, and `sample` and `transfer` refuse
another one. A model trained with ``dmu_range`` or ``concentration_range`` is sampled at the dmu
or composition of the ``--system`` file, so one checkpoint serves a scan with one system file
per point.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
import typer

from lattherm.cli.options import parse_list
from lattherm.io import load_yaml, write_json, write_table
from lattherm.models import build_model, model_spec
from lattherm.sampling import evaluate
from lattherm.systems import load_system
from lattherm.training import TrainConfig, load_trained_model, resolve_device, system_description, train
from lattherm.transfer import transfer as transfer_model

app = typer.Typer(no_args_is_help=True)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {' '.join(str(exc).split())}", err=True)  # one line, as lattherm.cli.main prints
    raise typer.Exit(code=1)


@app.command("train")
def train_command(
    system: Path = typer.Option(..., help="System YAML (see lattherm.systems)."),
    model: Path = typer.Option(..., help="Model YAML: {kind: made | transformer, ...hyperparameters}."),
    training: Path = typer.Option(..., help="Training YAML (fields of lattherm.training.TrainConfig)."),
    out_dir: Path = typer.Option(..., help="Writes checkpoint.pt, log.csv and summary.json here at the end."),
    progress_dir: Optional[Path] = typer.Option(
        None, help="Periodic checkpoint.pt and log.csv of the unfinished run, removed at the end "
        "(default: OUT_DIR/.progress; not an output, so a workflow manager keeps it)."),
) -> None:
    """Train a sampler by minimising the variational free energy; resumes an interrupted run (from
    PROGRESS_DIR) or extends a finished one (from OUT_DIR). Exits with status 143 on SIGTERM,
    after saving its progress."""
    try:
        sys_obj = load_system(system)
        spec = load_yaml(model)
        config = TrainConfig.from_dict(load_yaml(training) or {})
        torch.manual_seed(config.seed)
        net = build_model(spec, sys_obj.lattice)
        result = train(net, sys_obj, config, out_dir, progress_dir=progress_dir)
    except ValueError as exc:  # includes CheckpointError and spec errors
        _fail(exc)
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
    system: Path = typer.Option(..., help="System YAML of the training cell and Hamiltonian (its dmu or "
                                "composition may differ if the model is conditioned on it)."),
    samples: int = typer.Option(10000, help="Samples for importance weighting per temperature."),
    temperatures: Optional[str] = typer.Option(None, help="Temperatures, e.g. '2.0,2.269' (default: training T)."),
    mcmc_chains: int = typer.Option(64, help="Neural-MCMC chains."),
    mcmc_steps: int = typer.Option(200, help="Neural-MCMC steps per chain."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    z2_symmetric: bool = typer.Option(False, "--z2-symmetric/--no-z2-symmetric",
                                      help="Sample the spin-flip symmetrised model (zero-field spin systems)."),
    out: Path = typer.Option(..., help="Estimates table (.csv or .parquet), one row per temperature."),
) -> None:
    """Free energy (IS), ESS, F_q, neural-MCMC energy, C_v and order parameters per temperature."""
    try:
        sys_obj = load_system(system)
        loaded = load_trained_model(checkpoint, sys_obj, resolve_device(device))
        if temperatures is None and loaded.temperature is None:
            raise ValueError("the model is temperature-conditioned: give --temperatures")
        temps = [loaded.temperature] if temperatures is None else parse_list(temperatures, "--temperatures")
        rows = [evaluate(loaded.model, sys_obj, float(t), n_samples=samples, conditioning=loaded.conditioning,
                         mcmc_chains=mcmc_chains, mcmc_steps=mcmc_steps, seed=seed, z2_symmetric=z2_symmetric)
                for t in temps]
    except ValueError as exc:
        _fail(exc)
    write_table(out, pd.DataFrame(rows).assign(system=sys_obj.name))


@app.command()
def transfer(
    checkpoint: Path = typer.Option(..., help="checkpoint.pt trained on a smaller supercell."),
    system: Path = typer.Option(..., help="System YAML of the larger supercell (same lattice kind, species and "
                                "Hamiltonian; a spin glass's seed may differ)."),
    temperatures: Optional[str] = typer.Option(
        None, help="Temperatures, comma-separated (default: the training temperature); each is fine-tuned "
        "and corrected separately."),
    finetune_steps: int = typer.Option(0, help="Variational fine-tuning steps on the new supercell."),
    samples: int = typer.Option(10000, help="Samples for importance weighting."),
    mcmc_chains: int = typer.Option(64),
    mcmc_steps: int = typer.Option(200),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    z2_symmetric: bool = typer.Option(False, "--z2-symmetric/--no-z2-symmetric",
                                      help="Sample the spin-flip symmetrised model (zero-field spin systems)."),
    out: Path = typer.Option(..., help="Estimates table, one row per temperature (.csv or .parquet)."),
) -> None:
    """Move a trained model to a larger supercell, optionally fine-tune, and correct exactly."""
    targets = [None] if temperatures is None else list(parse_list(temperatures, "--temperatures"))
    try:
        sys_obj = load_system(system)
        rows = [transfer_model(checkpoint, sys_obj, temperature=t, finetune_steps=finetune_steps,
                               n_samples=samples, mcmc_chains=mcmc_chains, mcmc_steps=mcmc_steps, seed=seed,
                               device=device, progress=sys.stderr.isatty(), z2_symmetric=z2_symmetric)
                for t in targets]
    except ValueError as exc:
        _fail(exc)
    write_table(out, pd.DataFrame(rows).assign(system=sys_obj.name))
