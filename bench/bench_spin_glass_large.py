"""Spin glasses beyond enumeration (issue 13): neural F and P(q) against parallel tempering + MBAR.

SK N = 128 (Gaussian couplings, seed 1) at T = 1.0 and 0.5, and 2D +-J EA 16x16 (seed 1) at
T = 1.0. The reference is the workflow's: `reference_scan` (parallel tempering over the ladder
from beta = 0, MBAR free energies with error bars) and `overlap_tempering` (a second,
independent parallel-tempering run whose chains pair into replicas: P(q), exchange acceptances,
round trips and the equilibration check, chi_SG of the two halves of the run in sigmas). The
neural sampler (``--model``) is MADE with the exact local Boltzmann factor in its logits
(`physics_logits`, spin-flip symmetrised) or, on the EA lattice, config.yaml's transformer with
physics logits and 2x2 patches (bench_ablation's best on Ising), with MC refinement
(``--refine-sweeps``; the system's budget by default: 2 sweeps a step on SK, none on EA), trained
by the variational free energy and evaluated with importance sampling: F_IS against the MBAR F
in combined sigmas, ESS, and its importance-weighted P(q) against the tempering P(q)
(total-variation distance, and the chi-square p-value with the tempering histogram taken as the
expectation, which ignores its own error: a lower bound).

SK at T = 0.5 (below T_c = 1) is where reverse-KL training misses weight (modes), and no recipe
tried here closes it: without refinement, 300 steps of 256 (MADE width 4) leave F_IS 0.29 above
the MBAR F (+16 sigma, ESS 0.10: the ESS of the modes found), 1000 steps 0.20 (+6 sigma, ESS
0.013). Two refinement sweeps a step (1.5 times the cost of a step) put the 300-step model 0.02
from it with a broad q (ESS 0.001, error 0.16), but 1000 steps sharpen it back onto the same modes:
0.18 high (+11 sigma on the smaller error bar), ESS 0.094; a slower anneal (0.99, 600 steps)
with them: 0.18 high, ESS 0.047; width 8 (1.9 times the cost), 300 steps: 0.25 high, ESS 0.05.
The sweeps are the default for what they do at T = 1: ESS 0.05 -> 0.19 and P(q) TV 0.31 -> 0.11
for the same steps.

Training by example (``--example-sweeps 2 --refine-sweeps 0``: parallel tempering over the
system's ladder beside training, its chains at T trained up by the forward KL) brings most of the
missing weight back: SK at T = 0.5 F_IS 0.030 high (+2.1 sigma, was +11.3), ESS 0.16 (0.09), P(q)
TV 0.19 (0.42, chi-square p = 0.14); at T = 1 -1.8 sigma at ESS 0.09, worse than refinement's 0.19;
EA 16x16 (300 steps) 0.75 high (+2.1 sigma; by energy 5.2, +19.8) but at ESS 0.0004. A fixed pool
of 2000 tempering samples instead was learnt by heart: at T = 1 +9.0 sigma at ESS 0.003. Both
together (``--example-sweeps 2 --refine-sweeps 2``, config/paper.yaml's recipe for SK 128): T = 0.5
0.011 high (+0.8 sigma), ESS 0.165, P(q) TV 0.15 (chi-square p 0.008); T = 1 -1.3 sigma, ESS 0.205
(the best yet), TV 0.15 (p 0.27).

    python bench/bench_spin_glass_large.py [--quick] [--systems sk_128 ea_16x16] [--model made_physics]
        [--steps N] [--refine-sweeps K] [--example-sweeps K] [--temperatures T ...] [--coupling-seed S]
        [--reference-cache DIR] [--attention-shells N]

One torch thread; about 30 min (--quick: SK only, short runs). Writes
bench/results/spin_glass_large.json after every system, keeping the runs of other systems and
models (a run's key: system, temperature and, but for MADE, the model).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import benchlib
from lattherm.mcmc.mbar import mbar_scan
from lattherm.mcmc.samplers import overlap_tempering, reference_scan
from lattherm.models import build_model
from lattherm.sampling.evaluate import evaluate
from lattherm.sampling.overlap import chi_square_test, sampler_overlaps
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train

MODELS = {  # name: spec, Adam lr
    "made_physics": ({"kind": "made", "width": 4, "depth": 2, "z2_symmetric": True, "physics_logits": True}, 5e-3),
    "transformer_patch": ({"kind": "transformer", "d_model": 32, "n_layer": 1, "n_head": 2, "attention_shells": 2,
                           "z2_symmetric": True, "physics_logits": True, "patch": [2, 2]}, 2e-3),
}
SYSTEMS = {
    "sk_128": ({"model": "sherrington_kirkpatrick", "train_size": [128], "coupling_seed": 1},
               [1.0, 0.5], [20.0, 3.0, 2.0, 1.6, 1.3, 1.1, 1.0, 0.9, 0.8, 0.7, 0.6, 0.55, 0.5],
               {"steps": 1000, "batch_size": 256, "refine_sweeps": 2, "example_sweeps": 0}),
    "ea_16x16": ({"model": "edwards_anderson", "lattice": "square", "couplings": "pm_j", "train_size": [16, 16],
                  "coupling_seed": 1},
                 [1.0], [20.0, 5.0, 3.0, 2.5, 2.0, 1.7, 1.5, 1.3, 1.15, 1.0],
                 {"steps": 300, "batch_size": 128, "refine_sweeps": 0, "example_sweeps": 0}),
}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=32, help="parallel-tempering chains per temperature")
    p.add_argument("--sweeps", type=int, default=4000)
    p.add_argument("--samples", type=int, default=20000, help="importance samples per temperature")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--model", default="made_physics", choices=list(MODELS))
    p.add_argument("--attention-shells", type=int, default=None,
                   help="transformer_patch: neighbour shells each patch attends to (default 2; 2x2 patches: 7 reach "
                        "the 20 nearest patches); runs keyed _shells<n>")
    p.add_argument("--coupling-seed", type=int, default=None,
                   help="the disorder sample (default: the system's, seed 1); its runs are keyed _seed<n>")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the system's budget)")
    p.add_argument("--refine-sweeps", type=int, default=None,
                   help="MC refinement sweeps per training step (default: the system's budget)")
    p.add_argument("--temperatures", type=float, nargs="+", default=None,
                   help="train and evaluate at these of the system's temperatures only (default: all)")
    p.add_argument("--example-sweeps", type=int, default=None,
                   help="training by example: sweeps per step of parallel tempering over the system's ladder (0: "
                        "off; default: the system's budget)")
    p.add_argument("--reference-cache", type=Path, default=None,
                   help="a folder keeping each system's tempering reference (parquet) for later runs of the same "
                        "system, chains and sweeps (about 35 min saved on EA 16x16)")
    args = p.parse_args()
    spec, lr = MODELS[args.model]
    if args.attention_shells is not None:
        if spec["kind"] != "transformer":
            raise SystemExit(f"--attention-shells {args.attention_shells}: {args.model} has no attention")
        spec = {**spec, "attention_shells": args.attention_shells}
    torch.set_num_threads(1)
    chains, sweeps = (16, 1000) if args.quick else (args.chains, args.sweeps)
    out = args.out or benchlib.RESULTS_DIR / "spin_glass_large.json"
    results = json.loads(out.read_text())["results"]["runs"] if out.exists() and not args.quick else {}
    for name in args.systems:
        block, temperatures, ladder, budget = SYSTEMS[name]
        if args.quick and not name.startswith("sk"):
            continue
        steps = args.steps or (budget["steps"] // 5 if args.quick else budget["steps"])
        refine_sweeps = budget["refine_sweeps"] if args.refine_sweeps is None else args.refine_sweeps
        example_sweeps = budget["example_sweeps"] if args.example_sweeps is None else args.example_sweeps
        chosen = temperatures if args.temperatures is None else args.temperatures
        if not all(any(math.isclose(t, u) for u in temperatures) for t in chosen):
            raise SystemExit(f"--temperatures {chosen}: {name} has {temperatures}")
        if args.coupling_seed is not None:
            block = {**block, "coupling_seed": args.coupling_seed}
        config = {**block, "temperatures": temperatures,
                  "mcmc": {"temperatures": ladder, "chains": chains, "sweeps": sweeps, "burn_in": sweeps // 5}}
        system = build_system(config, name=name)
        fe, histograms, summary, reference_seconds, tempering_seconds = reference(
            system, args.reference_cache and args.reference_cache / f"{name}_seed{block['coupling_seed']}_{chains}x{sweeps}")
        for temperature in chosen:
            at = fe[np.isclose(fe.temperature, temperature)].iloc[0]
            pt = histograms[np.isclose(histograms.temperature, temperature)]
            pt_row = summary[np.isclose(summary.temperature, temperature)].iloc[0]
            torch.manual_seed(0)
            model = build_model(spec, system.cell)
            t0 = time.perf_counter()
            train(model, system, TrainConfig(temperature=temperature, steps=steps, batch_size=budget["batch_size"],
                                             lr=lr, anneal=0.98, seed=0, refine_sweeps=refine_sweeps,
                                             example_sweeps=example_sweeps),
                  progress=False)
            train_seconds = time.perf_counter() - t0
            ev = evaluate(model, system, temperature, n_samples=args.samples, mcmc_chains=8, mcmc_steps=20, seed=1)
            distribution, n_eff = sampler_overlaps(model, system, temperature, args.samples, seed=2)
            tempering_p = pt.probability.to_numpy()  # the same bins, in the same order, as the sampler's
            sigma = math.hypot(ev["free_energy_err"], float(at.free_energy_err))
            row = {
                "n_sites": system.n_sites, "temperature": temperature, "coupling_seed": block["coupling_seed"],
                "mbar_free_energy": float(at.free_energy), "mbar_free_energy_err": float(at.free_energy_err),
                "free_energy": ev["free_energy"], "free_energy_err": ev["free_energy_err"],
                "rel_difference": (ev["free_energy"] - float(at.free_energy)) / abs(float(at.free_energy)),
                "sigmas": (ev["free_energy"] - float(at.free_energy)) / sigma,
                "ess": ev["ess"], "train_seconds": train_seconds, "train_steps": steps, "model": args.model,
                "model_spec": spec, "lr": lr, "refine_sweeps": refine_sweeps, "example_sweeps": example_sweeps,
                "p_of_q_total_variation": 0.5 * float(np.abs(distribution - tempering_p).sum()),
                "p_of_q_p_value_vs_tempering": chi_square_test(distribution, n_eff, tempering_p).p_value,
                "p_of_q_n_eff": n_eff,
                "tempering": {"halves_sigma": float(pt_row.halves_sigma), "n_eff": float(pt_row.n_eff),
                              "round_trips": int(pt_row.round_trips),
                              "exchange_acceptance": summary.exchange_acceptance_colder.dropna().round(3).tolist(),
                              "reference_seconds": reference_seconds, "overlap_seconds": tempering_seconds},
            }
            key = (f"{name}_T{temperature:g}" + ("" if args.model == "made_physics" else f"_{args.model}")
                   + ("" if args.attention_shells is None else f"_shells{args.attention_shells}")
                   + (f"_examples{example_sweeps}" if example_sweeps else "")
                   + (f"_refine{refine_sweeps}" if example_sweeps and refine_sweeps else "")
                   + ("" if block["coupling_seed"] == 1 else f"_seed{block['coupling_seed']}"))
            results[key] = row
            print(f"{key}: F_IS {row['free_energy']:.4f} +- {row['free_energy_err']:.4f} vs PT+MBAR "
                  f"{row['mbar_free_energy']:.4f} +- {row['mbar_free_energy_err']:.4f} ({row['sigmas']:+.1f} sigma), "
                  f"ESS {row['ess']:.3f}, P(q) TV {row['p_of_q_total_variation']:.3f}; PT halves "
                  f"{row['tempering']['halves_sigma']:.1f} sigma, {row['tempering']['round_trips']} round trips; "
                  f"{train_seconds:.0f} s training", flush=True)
        write(results, args, chains, sweeps, out)


def reference(system, cache: Path | None) -> tuple:
    """The parallel-tempering reference of ``system``: MBAR free energies, the P(q) histograms and
    the tempering summary, with the seconds each took; read from ``cache`` (a folder) if it holds
    them, else computed (and kept there)."""
    names = ("free_energy", "histograms", "summary")
    if cache is not None and all((cache / f"{n}.parquet").exists() for n in names):
        seconds = json.loads((cache / "seconds.json").read_text())
        return (*(pd.read_parquet(cache / f"{n}.parquet") for n in names), *seconds)
    t0 = time.perf_counter()
    table, samples = reference_scan(system, seed=0)
    fe = mbar_scan(table, samples, system.name)
    reference_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    histograms, summary = overlap_tempering(system, seed=1)
    tempering_seconds = time.perf_counter() - t0
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for n, frame in zip(names, (fe, histograms, summary)):
            frame.to_parquet(cache / f"{n}.parquet")
        (cache / "seconds.json").write_text(json.dumps([reference_seconds, tempering_seconds]))
    return fe, histograms, summary, reference_seconds, tempering_seconds


def write(results: dict, args, chains: int, sweeps: int, out) -> None:
    headline = [{"metric": f"F_IS/N {key} ({r['n_sites']} sites), {r.get('model', 'made_physics')} vs PT + MBAR: "
                           f"{r['sigmas']:+.1f} sigma, ESS {r['ess']:.3f}",
                 "value": r["free_energy"] / r["n_sites"], "baseline": r["mbar_free_energy"] / r["n_sites"],
                 "ratio": r["free_energy"] / r["mbar_free_energy"]} for key, r in results.items()]
    benchlib.write_result("spin_glass_large", {"models": MODELS, "systems": {k: v[0] for k, v in SYSTEMS.items()},
                                               "chains": chains, "sweeps": sweeps, "n_samples": args.samples,
                                               "torch_threads": 1, "quick": args.quick},
                          {"runs": results, "headline": headline}, out)


if __name__ == "__main__":
    main()
