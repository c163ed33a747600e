"""Free-energy accuracy at equal training wall-clock: MAM transformer vs MADE, Ising 16x16 at beta_c.

Four models: the transformer trained with the exact ln q score (its default), the same with
local attention (``attention_shells: 2``), the same with the one-pass marginal score of
Liu-Ramadge-Adams (``score: marginal``), and MADE.

    python bench/bench_accuracy.py [--quick] [--budget SECONDS] [--device cpu|cuda]

Both models are trained with :func:`lattherm.training.variational.train` on the periodic 16x16
Ising model at the critical beta_c = ln(1 + sqrt 2) / 2 for the same training wall-clock
budget (the ``wall_time`` the training log records: sampling + loss + optimiser, without
checkpoint I/O). Training runs in chunks resumed from its checkpoint until the budget is spent.
The annealing rate is set per model from a short calibration run so that beta_t reaches 99 %
of beta at half the expected number of steps (the faster model takes more steps).

Figures: relative error |F_IS - F_exact| / |F_exact| of the importance-sampling free energy
against the exact finite-lattice result (Kaufman), its standard error, and the ESS per sample,
from :func:`lattherm.sampling.evaluate.evaluate` with the spin-flip symmetrised sampler
(``z2_symmetric``; the unsymmetrised figures are recorded too). The trained transformers are
then transferred without fine-tuning to 32x32 (:func:`lattherm.transfer.transfer`) and compared with the exact
32x32 free energy; MADE is tied to one size, so it has no transfer figure.
Writes bench/results/accuracy.json.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

import benchlib
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.models import build_model
from lattherm.sampling.evaluate import evaluate
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train
from lattherm.transfer import transfer


def settings(quick: bool) -> dict:
    if quick:
        return {"budget_s": 300.0, "batch": 64, "lr": 2e-3, "chunk_steps": 20, "n_samples": 4000,
                "n_samples_transfer": 2000, "mcmc_chains": 8, "mcmc_steps": 40,
                "models": compared_models({"d_model": 32, "n_head": 2, "n_layer": 2}, {"hidden": 256, "depth": 2})}
    return {"budget_s": 900.0, "batch": 256, "lr": 1e-3, "chunk_steps": 50, "n_samples": 20000,
            "n_samples_transfer": 10000, "mcmc_chains": 64, "mcmc_steps": 200,
            "models": compared_models({"d_model": 64, "n_head": 4, "n_layer": 3}, {"hidden": 1024, "depth": 3})}


def compared_models(transformer_size: dict, made_size: dict) -> dict:
    """The four model specs of the comparison, by name."""
    transformer = {"kind": "transformer", **transformer_size}
    return {"transformer": transformer, "transformer_local": {**transformer, "attention_shells": 2},
            "transformer_marginal_score": {**transformer, "score": "marginal"}, "made": {"kind": "made", **made_size}}


def calibrated_anneal(model_spec: dict, system, base: TrainConfig, budget_s: float) -> tuple[float, float]:
    """Seconds per step of a throwaway 3-step run, and the anneal rate a with a^(steps/2) = 0.01."""
    torch.manual_seed(base.seed)
    model = build_model(model_spec, system.lattice)
    log = train(model, system, replace(base, steps=3, checkpoint_every=3), progress=False).log
    per_step = float(log.wall_time.iloc[-1] - log.wall_time.iloc[0]) / 2  # the first step warms up
    expected_steps = max(budget_s / per_step, 10.0)
    return per_step, 0.01 ** (2.0 / expected_steps)


def train_for(model_spec: dict, system, config: TrainConfig, budget_s: float, chunk: int, out_dir: Path):
    """Train in chunks of ``chunk`` steps, resuming from the checkpoint, until the log's wall_time
    reaches ``budget_s``; returns the model and the training log."""
    torch.manual_seed(config.seed)
    model = build_model(model_spec, system.lattice)
    steps = 0
    while True:
        steps += chunk
        log = train(model, system, replace(config, steps=steps, checkpoint_every=steps), out_dir=out_dir,
                    progress=False).log
        if log.wall_time.iloc[-1] >= budget_s:
            return model, log


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--budget", type=float, default=None, help="training seconds per model (default by mode)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    if args.budget is not None:
        cfg["budget_s"] = args.budget
    temperature = 1.0 / BETA_C
    system = build_system({"model": "ising", "lattice": "square", "train_size": [16, 16]})
    large = build_system({"model": "ising", "lattice": "square", "train_size": [32, 32]})
    exact = {16: float(ising_thermo(16, 16, [BETA_C]).free_energy.iloc[0]),
             32: float(ising_thermo(32, 32, [BETA_C]).free_energy.iloc[0])}
    base = TrainConfig(steps=1, batch_size=cfg["batch"], lr=cfg["lr"], temperature=temperature, device=args.device)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, spec in cfg["models"].items():
            per_step, anneal = calibrated_anneal(spec, system, base, cfg["budget_s"])
            config = replace(base, anneal=anneal)
            start = time.perf_counter()
            model, log = train_for(spec, system, config, cfg["budget_s"], cfg["chunk_steps"], Path(tmp) / kind)
            wall = time.perf_counter() - start
            # zero-field Ising is spin-flip symmetric: the symmetrised sampler is the headline,
            # the plain one is kept to show what a one-mode sampler misses
            ev_plain = evaluate(model, system, temperature, n_samples=cfg["n_samples"], mcmc_chains=cfg["mcmc_chains"],
                                mcmc_steps=cfg["mcmc_steps"], batch_size=1024, seed=1)
            ev = evaluate(model, system, temperature, n_samples=cfg["n_samples"], mcmc_chains=cfg["mcmc_chains"],
                          mcmc_steps=cfg["mcmc_steps"], batch_size=1024, seed=1, z2_symmetric=True)
            rows[kind] = {"model": spec, "train_config": asdict(config), "calibration_seconds_per_step": per_step,
                          "train_steps": int(log.step.iloc[-1]), "train_seconds": float(log.wall_time.iloc[-1]),
                          "wall_seconds_including_checkpoints": wall,
                          "parameters": sum(q.numel() for q in model.parameters()),
                          "F_exact": exact[16], "rel_error": abs(ev["free_energy"] - exact[16]) / abs(exact[16]),
                          "rel_error_se": ev["free_energy_err"] / abs(exact[16]),
                          "rel_error_unsymmetrised": abs(ev_plain["free_energy"] - exact[16]) / abs(exact[16]),
                          "ess_unsymmetrised": ev_plain["ess"], **ev}
            print(f"{kind:26s} {rows[kind]['train_steps']} steps in {rows[kind]['train_seconds']:.0f} s: "
                  f"|dF|/|F| = {rows[kind]['rel_error']:.2e} +- {rows[kind]['rel_error_se']:.1e}, ESS {ev['ess']:.3g} "
                  f"(unsymmetrised {rows[kind]['rel_error_unsymmetrised']:.2e}, ESS {ev_plain['ess']:.3g})")
        for kind in ("transformer", "transformer_local"):
            tr = transfer(Path(tmp) / kind / "checkpoint.pt", large, n_samples=cfg["n_samples_transfer"],
                          mcmc_chains=cfg["mcmc_chains"], mcmc_steps=cfg["mcmc_steps"], seed=2, device=args.device,
                          progress=False, z2_symmetric=True)
            rows[f"{kind}_transfer_32x32"] = {**tr, "F_exact": exact[32],
                                              "rel_error": abs(tr["free_energy"] - exact[32]) / abs(exact[32]),
                                              "rel_error_se": tr["free_energy_err"] / abs(exact[32])}
            print(f"{kind} transferred to 32x32: |dF|/|F| = {rows[f'{kind}_transfer_32x32']['rel_error']:.2e}, "
                  f"ESS {tr['ess']:.3g}")

    t, m, tm = rows["transformer"], rows["made"], rows["transformer_marginal_score"]
    headline = [
        {"metric": f"|F_IS - F_exact|/|F| 16x16 beta_c, {cfg['budget_s']:.0f} s training, transformer vs MADE",
         "value": t["rel_error"], "baseline": m["rel_error"], "ratio": t["rel_error"] / m["rel_error"]},
        {"metric": "ESS per sample 16x16 beta_c, transformer vs MADE", "value": t["ess"], "baseline": m["ess"],
         "ratio": t["ess"] / m["ess"]},
        {"metric": "|F_IS - F_exact|/|F| 16x16 beta_c, transformer: exact ln q score vs marginal score",
         "value": t["rel_error"], "baseline": tm["rel_error"], "ratio": t["rel_error"] / tm["rel_error"]},
        {"metric": "|F_IS - F_exact|/|F| 16x16 beta_c, transformer: local vs global attention",
         "value": rows["transformer_local"]["rel_error"], "baseline": t["rel_error"],
         "ratio": rows["transformer_local"]["rel_error"] / t["rel_error"]},
        *({"metric": f"{label} 32x32 after zero-shot transfer, {kind} (MADE cannot transfer)",
           "value": rows[f"{kind}_transfer_32x32"][key], "baseline": None, "ratio": None}
          for kind in ("transformer", "transformer_local")
          for label, key in (("|F_IS - F_exact|/|F|", "rel_error"), ("ESS per sample", "ess"))),
    ]
    benchlib.write_result("accuracy", {"quick": args.quick, "device": args.device, "threads": args.threads,
                                       "temperature": temperature, "beta": BETA_C, **cfg,
                                       "anneal_rule": "a^(expected_steps / 2) = 0.01 from a 3-step calibration",
                                       "made_transfer": "impossible: MADE is tied to one site count"},
                          {"models": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
