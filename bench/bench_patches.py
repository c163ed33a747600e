"""Patches in the any-order transformer (issue 12, item 2): cost and accuracy against patch size.

    python bench/bench_patches.py [--quick] [--repeats 3] [--budget SECONDS]

1. Cost on 16x16 Ising at beta_c, one thread, the same transformer (d_model 32, 2 heads, 2
   layers, physics logits, Z2 mixture) with one site per step and with 2x2, 2x4 and 4x4 patches
   (4, 8, 16 sites per step; vocabulary 16, 256, 65536): the median time per sample of the
   KV-cached sampler (``--sample-batch`` samples per call) and of one training step (sampling,
   exact ln q of the mixture, MaM penalty, backward, Adam; ``--train-batch`` samples), over
   ``--repeats`` repeats after a warm-up, and their ratios to one site per step in the same run.
2. Accuracy on 8x8 Ising at beta_c (Kaufman): each patch size with and without physics logits,
   trained for the same ``--budget`` seconds of the training log's wall time (chunks of at most
   a fifth of the budget resumed from the checkpoint, bench_accuracy.train_for; anneal
   calibrated to the budget), then the
   signed relative F error of importance sampling with its standard error and the ESS per
   sample, from ``--samples`` samples.

Writes bench/results/patches.json.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

import benchlib
from bench_accuracy import calibrated_anneal, train_for
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.models import build_model
from lattherm.models.physics import attach_physics, set_physics_beta
from lattherm.sampling.evaluate import evaluate
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train

PATCHES = {"site": None, "2x2": [2, 2], "2x4": [2, 4], "4x4": [4, 4]}
MODEL = {"kind": "transformer", "d_model": 32, "n_head": 2, "n_layer": 2, "z2_symmetric": "auto"}


def ising(size: int):
    return build_system({"model": "ising", "lattice": "square", "train_size": [size, size]})


def cost(system, patch, sample_batch: int, train_batch: int, repeats: int) -> dict:
    """Median seconds per sample of sampling and of a training step."""
    torch.manual_seed(0)
    model = build_model({**MODEL, "z2_symmetric": True, "patch": patch, "physics_logits": True}, system.lattice)
    attach_physics(model, system.hamiltonian)
    set_physics_beta(model, BETA_C)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        sample_s, sample_runs = benchlib.median_time(lambda: model.sample(sample_batch, generator=gen), repeats)
    config = TrainConfig(steps=repeats + 1, batch_size=train_batch, lr=1e-3, anneal=0.98, temperature=1 / BETA_C,
                         checkpoint_every=repeats + 1)
    log = train(model, system, config, progress=False).log
    step_s = log.wall_time.diff().dropna().tolist()  # the first step warms up
    return {"sample_seconds_per_sample": sample_s / sample_batch, "sample_runs_s": sample_runs,
            "train_step_seconds_per_sample": statistics.median(step_s) / train_batch, "train_step_runs_s": step_s}


def accuracy(system, patch, physics: bool, cfg: dict, tmp: Path, name: str) -> dict:
    spec = {**MODEL, "patch": patch, "physics_logits": physics}
    base = TrainConfig(steps=3, batch_size=cfg["batch"], lr=cfg["lr"], anneal=0.98, temperature=1 / BETA_C)
    per_step, anneal = calibrated_anneal(spec, system, base, cfg["budget_s"])
    config = replace(base, anneal=anneal)
    chunk = max(1, min(cfg["chunk_steps"], int(cfg["budget_s"] / per_step / 5)))  # overshoot the budget by at most ~1/5
    model, log = train_for(spec, system, config, cfg["budget_s"], chunk, tmp / name)
    exact = ising_thermo(system.lattice.repeats[0], system.lattice.repeats[1], [BETA_C]).free_energy[0]
    est = evaluate(model, system, 1 / BETA_C, n_samples=cfg["samples"], mcmc_chains=4, mcmc_steps=2, batch_size=128)
    return {"model": spec, "train_config": asdict(config), "train_steps": int(log.step.iloc[-1]),
            "train_seconds": float(log.wall_time.iloc[-1]), "calibration_seconds_per_step": per_step,
            "relative_F_error": (est["free_energy"] - exact) / abs(exact),
            "relative_F_error_se": est["free_energy_err"] / abs(exact), "ess_per_sample": est["ess"]}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=None, help="training seconds per accuracy run")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = {"cost_size": 16, "sample_batch": 64, "train_batch": 16, "accuracy_size": 8, "budget_s": 40.0,
           "batch": 128, "lr": 2e-3, "chunk_steps": 20, "samples": 2000, "repeats": args.repeats}
    if args.quick:
        cfg.update(cost_size=8, budget_s=10.0, samples=1000)
    if args.budget is not None:
        cfg["budget_s"] = args.budget
    results: dict = {"cost": {}, "accuracy": {}}
    with tempfile.TemporaryDirectory() as tmp:
        system = ising(cfg["cost_size"])
        for name, patch in PATCHES.items():
            t0 = time.perf_counter()
            results["cost"][name] = cost(system, patch, cfg["sample_batch"], cfg["train_batch"], cfg["repeats"])
            row = results["cost"][name]
            print(f"cost {name}: sample {row['sample_seconds_per_sample'] * 1e3:.2f} ms/sample, train step "
                  f"{row['train_step_seconds_per_sample'] * 1e3:.1f} ms/sample ({time.perf_counter() - t0:.0f} s)", flush=True)
        site = results["cost"]["site"]
        for row in results["cost"].values():
            row["sample_speedup_vs_site"] = site["sample_seconds_per_sample"] / row["sample_seconds_per_sample"]
            row["train_step_speedup_vs_site"] = site["train_step_seconds_per_sample"] / row["train_step_seconds_per_sample"]
        system = ising(cfg["accuracy_size"])
        for name, patch in PATCHES.items():
            for physics in (False, True):
                key = f"{name}_{'physics' if physics else 'plain'}"
                row = results["accuracy"][key] = accuracy(system, patch, physics, cfg, Path(tmp), key)
                print(f"accuracy {key}: {row['train_steps']} steps in {row['train_seconds']:.0f} s, relative F error "
                      f"{row['relative_F_error']:.2e} +- {row['relative_F_error_se']:.1e}, ESS {row['ess_per_sample']:.3f}",
                      flush=True)
        for key, row in results["accuracy"].items():
            reference = results["accuracy"]["site_" + key.split("_", 1)[1]]
            row["ess_ratio_vs_site"] = row["ess_per_sample"] / reference["ess_per_sample"]
    benchlib.write_result("patches", cfg, results, args.out)


if __name__ == "__main__":
    main()
