"""The energy / link-overlap identity as parallel tempering's equilibration check (issue 13).

Gaussian EA 10x10 (couplings N(0, 1)), 20 disorder samples (coupling seeds 1-20), parallel
tempering over the default config's spin-glass ladder (T = 20 ... 0.5, 12 tuned rungs) extended
to T = 0.4 and 1/3 (beta = 1 ... 3), `overlap_tempering` and `link_overlap_identity` as the
workflow runs them: per temperature [<E>] / N_b against -beta (1 - [<q_l>]) with sample-to-sample
errors and their distance in sigma, and the halves check (chi_SG) beside it. The same samples
again with a run too short to equilibrate (128 sweeps counted from the random start), which the
check must fail.

    python bench/bench_link_overlap.py [--quick]

One torch thread; about 12 min on the loaded 2-core CPU (--quick: 6 samples, 1000 sweeps).
Writes bench/results/link_overlap.json.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import benchlib
from lattherm.analysis.spin_glass import MEAN, link_overlap_identity
from lattherm.mcmc.samplers import overlap_tempering
from lattherm.systems import build_system

SYSTEM = {"model": "edwards_anderson", "lattice": "square", "couplings": "gaussian", "train_size": [10, 10]}
LADDER = [20.0, 5.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.4, 1 / 3]  # config.yaml's spin_glass ladder, down to beta = 3
RUNGS = 14  # config.yaml's 12 for its 8 temperatures, and one more per added temperature
REPORTED = [1.0, 0.7, 0.5, 0.4, 1 / 3]  # beta = 1 ... 3


def run(samples: int, chains: int, sweeps: int, burn_in: int, rungs: int | None) -> dict:
    summaries, seconds = [], 0.0
    for seed in range(1, samples + 1):
        block = {**SYSTEM, "coupling_seed": seed,
                 "mcmc": {"temperatures": LADDER, "chains": chains, "sweeps": sweeps, "burn_in": burn_in, "rungs": rungs}}
        t0 = time.process_time()
        summaries.append(overlap_tempering(build_system(block, name=f"gauss_seed{seed}"), seed=seed)[1])
        seconds += time.process_time() - t0
    table = link_overlap_identity(summaries, "gauss")
    means = table[table["sample"] == MEAN]
    rows = []
    for temperature in REPORTED:
        row = means[np.isclose(means.temperature, temperature)].iloc[0]
        halves = [s[np.isclose(s.temperature, temperature)].halves_sigma.iloc[0] for s in summaries]
        rows.append({"temperature": temperature, "beta": row.beta, "energy_per_bond": row.energy_per_bond,
                     "energy_per_bond_err": row.energy_per_bond_err, "link_overlap": row.link_overlap,
                     "link_overlap_err": row.link_overlap_err, "link_energy_per_bond": row.link_energy_per_bond,
                     "link_energy_per_bond_err": row.link_energy_per_bond_err, "difference": row.difference,
                     "difference_err": row.difference_err, "sigma": row.sigma, "p_value": row.p_value,
                     "check": row.check, "halves_sigma_median": float(np.median(halves)),
                     "halves_sigma_max": float(np.max(halves))})
    return {"samples": samples, "chains": chains, "sweeps": sweeps, "burn_in": burn_in, "rungs": rungs,
            "cpu_seconds": seconds, "per_temperature": rows,
            "per_sample": table[(table["sample"] != MEAN) & np.isclose(table.temperature.to_numpy()[:, None], REPORTED).any(1)]
            .drop(columns=["family", "n_samples", "sigma", "p_value", "check"]).to_dict(orient="records")}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--sweeps", type=int, default=8000)
    args = p.parse_args()
    torch.set_num_threads(1)
    samples, sweeps = (6, 1000) if args.quick else (args.samples, args.sweeps)
    equilibrated = run(samples, 16, sweeps, sweeps // 4, RUNGS)
    short = run(samples, 16, 128, 0, None)
    for name, r in (("equilibrated", equilibrated), ("short", short)):
        print(f"{name}: {r['samples']} samples x {r['sweeps']} sweeps, {r['cpu_seconds']:.0f} CPU-s", flush=True)
        for row in r["per_temperature"]:
            print(f"  beta {row['beta']:.2f}: E/N_b {row['energy_per_bond']:.4f} +- {row['energy_per_bond_err']:.4f}, "
                  f"-beta (1 - q_l) {row['link_energy_per_bond']:.4f} +- {row['link_energy_per_bond_err']:.4f}, "
                  f"difference {row['difference']:+.4f} +- {row['difference_err']:.4f} ({row['sigma']:+.1f} sigma, "
                  f"p {row['p_value']:.2g}) {row['check']}; halves median {row['halves_sigma_median']:.1f} sigma")
    coldest = equilibrated["per_temperature"][-1]
    worst = max(equilibrated["per_temperature"], key=lambda row: abs(row["sigma"]))
    headline = [
        {"metric": f"Gaussian EA 10x10, {samples} samples: energy/link-overlap identity at beta = 3 (sigma), "
                   f"PT {sweeps} sweeps vs 128 from random starts",
         "value": coldest["sigma"], "baseline": short["per_temperature"][-1]["sigma"], "ratio": None},
        {"metric": "same: largest abs(sigma) over beta = 1 ... 3 (equilibrated run)", "value": abs(worst["sigma"]),
         "baseline": None, "ratio": None},
    ]
    benchlib.write_result("link_overlap", {"system": SYSTEM, "temperatures": LADDER, "rungs": RUNGS, "samples": samples,
                                           "sweeps": sweeps, "torch_threads": 1, "quick": args.quick},
                          {"equilibrated": equilibrated, "short": short, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
