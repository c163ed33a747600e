"""MC refinement and self-distillation (issue 12, item 3): free-energy error, ESS and training time
with and without ``refine_sweeps``, at equal training steps and at equal training wall time.

Cases: periodic Ising 4x4 and 8x8 at beta_c = 0.4407 and at low temperature beta = 0.6 (exact F:
Kaufman), and a +-J Edwards-Anderson spin glass on 4x4 (coupling seed 0) at beta = 2 (exact F:
enumeration of the 2^16 configurations). MADE (width 4 per site, depth 2, z2_symmetric auto: on
for all of these zero-field models), batch 256, Adam lr 1e-3, anneal 0.98, seed 0, one thread.
Variants per case:

- ``off``: ``--steps`` steps without refinement;
- ``on``: the same steps with ``refine_sweeps = --sweeps`` (the system's flip move: colour-class
  heat bath) and ``refine_weight = --weight``;
- ``off_equal_time``: without refinement for as many steps as ``on`` costs, from the medians of
  ``--repeats`` timed 20-step runs of each variant; it is the ``off`` run extended by resuming its
  checkpoint (annealing depends only on the step, so this is the longer run itself).

    python bench/bench_refinement.py [--quick] [--steps N] [--sweeps K] [--weight W]

Figures: signed relative error (F_IS - F) / |F| with its standard error, the variational bound's
relative gap (F_q - F) / |F|, ESS per sample (10^4 samples), training seconds; ratios on / off of
ESS and |error| at equal steps and at equal time. One training seed per variant: differences
within a few standard errors are noise. Writes bench/results/refinement.json.

Measured (2-core CPU shared, load average ~10; 45 minutes of wall time, about 15 of CPU): 4 sweeps
cost 1.4-1.6x per step by the short-run medians, 1.6-1.9x by the full runs' own times, so the
equal-time rows give ``off`` fewer steps than equal time would (in refinement's favour). At equal
steps refinement raised ESS everywhere (8x8 beta_c 0.019 -> 0.12, 8x8 beta 0.6 0.26 -> 0.43,
4x4 beta_c 0.89 -> 0.97); at equal time it did not help on 4x4 (both betas) or EA 4x4 (ESS 0.79
vs 0.89) and was within noise on 8x8 beta_c (0.12 vs 0.15); only 8x8 at beta = 0.6 kept a gain
(0.43 vs 0.37). It widened EA's variational gap (F_q - F: 1.5e-2 vs 2.9e-3): the forward term
spreads q over the refined samples.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

import benchlib
from lattherm.exact.enumeration import exact_thermo
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.models import build_model
from lattherm.sampling.evaluate import evaluate
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train

MADE = {"kind": "made", "width": 4, "depth": 2, "z2_symmetric": "auto"}
TIMING_STEPS = 20


def training(steps: int, beta: float, sweeps: int, weight: float) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=256, lr=1e-3, anneal=0.98, clip=1.0, temperature=1 / beta, seed=0,
                       checkpoint_every=steps, refine_sweeps=sweeps, refine_weight=weight)


def fresh_model(system):
    torch.manual_seed(0)
    return build_model(MADE, system.lattice)


def estimate(model, system, beta: float, exact: float, steps: int, seconds: float) -> dict:
    ev = evaluate(model, system, 1 / beta, n_samples=10000, mcmc_chains=8, mcmc_steps=20, seed=1)
    return {"steps": steps, "train_seconds": seconds, "ess": ev["ess"],
            "rel_error": (ev["free_energy"] - exact) / abs(exact), "rel_error_err": ev["free_energy_err"] / abs(exact),
            "variational_gap": (ev["variational_free_energy"] - exact) / abs(exact)}


def step_seconds(system, beta: float, sweeps: int, weight: float, repeats: int) -> float:
    """Median seconds per training step of a fresh 20-step run (setup included, as in a real run)."""
    def once():
        train(fresh_model(system), system, training(TIMING_STEPS, beta, sweeps, weight), progress=False)
    return benchlib.median_time(once, repeats)[0] / TIMING_STEPS


def run_case(system, beta: float, exact: float, steps: int, sweeps: int, weight: float, repeats: int) -> dict:
    per_step = {"off": step_seconds(system, beta, 0, weight, repeats),
                "on": step_seconds(system, beta, sweeps, weight, repeats)}
    row = {"exact_free_energy": exact, "step_seconds": per_step,
           "step_time_ratio": per_step["on"] / per_step["off"]}
    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    off = train(fresh_model(system), system, training(steps, beta, 0, weight), out / "off", progress=False)
    row["off"] = estimate(off.model, system, beta, exact, steps, time.perf_counter() - t0)
    t0 = time.perf_counter()
    on = train(fresh_model(system), system, training(steps, beta, sweeps, weight), progress=False)
    row["on"] = estimate(on.model, system, beta, exact, steps, time.perf_counter() - t0)
    equal = max(steps, round(steps * row["step_time_ratio"]))
    t0 = time.perf_counter()
    longer = train(fresh_model(system), system, training(equal, beta, 0, weight), out / "off", progress=False)
    row["off_equal_time"] = estimate(longer.model, system, beta, exact, equal,
                                     row["off"]["train_seconds"] + time.perf_counter() - t0)
    for name, other in (("equal_steps", "off"), ("equal_time", "off_equal_time")):
        row[f"ess_ratio_{name}"] = row["on"]["ess"] / max(row[other]["ess"], 1e-300)
        row[f"abs_error_ratio_{name}"] = abs(row["on"]["rel_error"]) / max(abs(row[other]["rel_error"]), 1e-300)
    return row


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--sweeps", type=int, default=4)
    p.add_argument("--weight", type=float, default=1.0)
    p.set_defaults(repeats=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    steps = args.steps or (300 if args.quick else 1000)

    def ising(size):
        return build_system({"model": "ising", "lattice": "square", "train_size": [size, size]})

    ea = build_system({"model": "edwards_anderson", "lattice": "square", "train_size": [4, 4], "coupling_seed": 0})
    cases = {}
    for size in (4, 8):
        for label, beta in (("beta_c", BETA_C), ("beta_0.6", 0.6)):
            cases[f"ising_{size}x{size}_{label}"] = (ising(size), beta,
                                                     float(ising_thermo(size, size, [beta]).free_energy.iloc[0]))
    cases["ea_4x4_beta_2"] = (ea, 2.0, float(exact_thermo(ea.hamiltonian, [2.0]).free_energy[0]))

    results, headline = {}, []
    for case, (system, beta, exact) in cases.items():
        row = run_case(system, beta, exact, steps, args.sweeps, args.weight, args.repeats)
        results[case] = row
        for variant in ("off", "on", "off_equal_time"):
            r = row[variant]
            print(f"{case} {variant} ({r['steps']} steps): rel F error {r['rel_error']:+.2e} +- {r['rel_error_err']:.1e}, "
                  f"F_q gap {r['variational_gap']:.2e}, ESS {r['ess']:.3f}, {r['train_seconds']:.0f} s", flush=True)
        for name, other in (("equal steps", "off"), ("equal time", "off_equal_time")):
            key = name.replace(" ", "_")
            headline.append({"metric": f"ESS per sample {case}, refinement ({args.sweeps} sweeps) vs none, {name}",
                             "value": row["on"]["ess"], "baseline": row[other]["ess"], "ratio": row[f"ess_ratio_{key}"]})
            headline.append({"metric": f"|F_IS - F|/|F| {case}, refinement ({args.sweeps} sweeps) vs none, {name}",
                             "value": abs(row["on"]["rel_error"]), "baseline": abs(row[other]["rel_error"]),
                             "ratio": row[f"abs_error_ratio_{key}"]})
    results["headline"] = headline
    benchlib.write_result("refinement", {"steps": steps, "batch": 256, "lr": 1e-3, "anneal": 0.98,
                                         "refine_sweeps": args.sweeps, "refine_weight": args.weight,
                                         "timing_repeats": args.repeats, "timing_steps": TIMING_STEPS,
                                         "quick": args.quick, "made": MADE, "torch_threads": 1}, results, args.out)


if __name__ == "__main__":
    main()
