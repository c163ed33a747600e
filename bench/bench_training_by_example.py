"""Training by example (training ``example_sweeps``) ablated: CuAu 128 sites, x = 0.5, 700 K (issue 12's case).

The same MADE with physics logits (bench_time_to_f's plain recipe: width 4, depth 3, 128-sample
batches, lr 5e-3, anneal 0.98) trained by energy alone and by energy and by example: parallel
tempering (swap moves, 16 chains, bench_time_to_f's 15 temperatures from 20000 K down to 700 K,
256 sweeps of burn-in) goes on beside training, ``--example-sweeps`` sweeps a step (charged to
training), and its 16 chains at 700 K, each through a random operation of the cell's space group
(1536: the 12-operation point group times 128 translations), are trained up by the forward KL
beside the variational loss (scored by the ln q the model samples: masked to the composition).
Each budget resumes the last one's checkpoint. Every model is sampled as it is and through the
cell's point-group mixture (12 operations; bench_time_to_f's second row). F_IS (8192 samples)
against bench_time_to_f's best MCMC estimate (parallel swaps with replica exchange + MBAR, 4096
sweeps; bench/results/time_to_f.json), its distance in combined sigmas, ESS, CPU seconds
(training, sampling) and the CPU seconds to a 1e-4 relative error bar by bench_time_to_f's rule
(trusted only within 2 sigma at ESS >= 0.01). Ratios: by example / by energy at each budget and
way of sampling.

Pilots (one thread, beside a second bench; 200 steps), from a fixed pool of tempering samples
instead of a run going on: by energy +0.56 meV/site (bench_time_to_f: 10.7 sigma, ESS 0.018);
960 samples without the space-group images +0.28 meV/site (4.8 sigma, ESS 0.013); 2048 with them
+0.14 meV/site (1.3 sigma) but ESS 0.0027. (On SK 128 at T = 1 a pool of 2000, revisited 128
times in 1000 steps, was learnt by heart: +9 sigma at ESS 0.003, against -0.3 sigma at 0.19 by
energy; 600 steps left the pool's mean ln q 18.7 above that of 2000 fresh samples, -46.9 against
-65.6, at ESS 0.0008: hence the run going on.)

    python bench/bench_training_by_example.py [--quick] [--steps 200 400]

One torch thread; about 40 min (--quick: 50 steps, 2048 importance samples).
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from pathlib import Path

import torch

import benchlib
from bench_time_to_f import MADE_PHYSICS, neural_estimate, time_to_f
from lattherm.ce.published import write_published_ce
from lattherm.models import build_model
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train

TEMPERATURE = 700.0
GRID = [20000.0, 8000.0, 4000.0, 2500.0, 1800.0, 1400.0, 1200.0, 1000.0, 900.0, 850.0, 800.0, 775.0, 750.0, 725.0,
        700.0]
TARGET = 1e-4
METHODS = {"by energy": False, "by energy and by example": True}  # name: with examples
SAMPLED = ("plain", "point-group mixture")  # the trained model as it is, and averaged over the cell's point group


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=None, help="training budgets (default 200 400)")
    p.add_argument("--example-sweeps", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                   help="train by energy alone, by energy and by example, or both (default; the ratios need both)")
    args = p.parse_args()
    torch.set_num_threads(1)
    steps = args.steps or ([50] if args.quick else [200, 400])
    samples = 2048 if args.quick else 8192
    reference_case = json.loads((benchlib.RESULTS_DIR / "time_to_f.json").read_text())["results"]["cuau128"]
    reference, reference_err = reference_case["reference"], reference_case["reference_err"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        system = build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "train_size": [4, 4, 8],
                               "ensemble": "canonical", "concentration": 0.5,
                               "mcmc": {"temperatures": GRID, "chains": 16, "sweeps": 1024, "burn_in": 256}},
                              ce_file=write_published_ce(Path(tmp) / "cuau.json"))
        for method in args.methods:
            example_sweeps = args.example_sweeps if METHODS[method] else 0
            training = 0.0
            for budget in steps:
                torch.manual_seed(0)
                model = build_model(MADE_PHYSICS, system.lattice)  # resumed from the last budget's checkpoint
                t0 = time.process_time()
                result = train(model, system, TrainConfig(temperature=TEMPERATURE, steps=budget, batch_size=128, lr=5e-3,
                                                          anneal=0.98, seed=0, checkpoint_every=budget,
                                                          example_sweeps=example_sweeps),
                               out_dir=Path(tmp) / method.replace(" ", "_"), progress=False)
                training += time.process_time() - t0
                for sampled in SAMPLED:
                    ev, sampling = neural_estimate(result.model, system, TEMPERATURE, samples,
                                                   mixture=sampled == "point-group mixture")
                    row = {"method": method, "sampled": sampled, "steps": budget, "example_sweeps": example_sweeps,
                           "samples": samples, "training_seconds": training, "sampling_seconds": sampling,
                           "cpu_seconds": training + sampling, "free_energy": ev["free_energy"],
                           "free_energy_err": ev["free_energy_err"], "ess": ev["ess"]}
                    row.update(time_to_f(row, reference, reference_err, TARGET))
                    row["mev_per_site"] = 1e3 * (row["free_energy"] - reference) / system.n_sites
                    rows.append(row)
                    print(f"{method:26s} {budget:4d} steps, {sampled:19s}: F {row['free_energy']:.4f} +- "
                          f"{row['free_energy_err']:.4f} ({row['sigmas']:+.1f} sigma, {row['mev_per_site']:+.2f} "
                          f"meV/site), ESS {row['ess']:.4f}, {training:.0f} CPU-s training", flush=True)
    headline = []
    for budget, sampled in itertools.product(steps if set(args.methods) == set(METHODS) else [], SAMPLED):
        plain, example = (next(r for r in rows if r["steps"] == budget and r["method"] == m and r["sampled"] == sampled)
                          for m in ("by energy", "by energy and by example"))
        headline.append({"metric": f"ESS per sample, CuAu 128 x = 0.5 700 K, MADE physics {budget} steps, sampled "
                                   f"{sampled}: trained by energy and by example vs by energy", "value": example["ess"],
                         "baseline": plain["ess"], "ratio": example["ess"] / plain["ess"]})
        headline.append({"metric": f"|F_IS - F_MCMC| in sigmas, same, {budget} steps: by example vs by energy",
                         "value": abs(example["sigmas"]), "baseline": abs(plain["sigmas"]),
                         "ratio": abs(example["sigmas"]) / abs(plain["sigmas"])})
        headline.append({"metric": f"CPU s to F at relative error {TARGET:g} (training charged; never: not within "
                                   f"2 sigma or ESS < 0.01), same, {budget} steps: by example vs by energy",
                         "value": example["seconds_to_target"] or "never",
                         "baseline": plain["seconds_to_target"] or "never",
                         "ratio": (example["seconds_to_target"] / plain["seconds_to_target"]
                                   if example["seconds_to_target"] and plain["seconds_to_target"] else None)})
    benchlib.write_result("training_by_example", {
        "model": MADE_PHYSICS, "temperature": TEMPERATURE, "grid": GRID, "chains": 16, "burn_in": 256,
        "example_sweeps": args.example_sweeps, "steps": steps, "samples": samples, "batch_size": 128, "lr": 5e-3,
        "torch_threads": 1, "quick": args.quick, "reference": reference, "reference_err": reference_err,
        "reference_source": reference_case["reference_source"]},
        {"rows": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
