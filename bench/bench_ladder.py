"""Parallel tempering on a tuned ladder vs the configured one (issue 13), at equal cost.

+-J EA 16x16 (seed 1) over the paper config's 15 temperatures (T = 20 ... 0.5): the configured
ladder alone, against `mcmc.rungs` = 24 (`lattherm.mcmc.ladder.tuned_ladder`: the 15 kept, 9
rungs placed at equal thermodynamic length). Equal cost: both get the same replica-sweeps, the
tuned run's pilot rounds charged to it, so it runs fewer sweeps. Reported: the exchange-acceptance
profile (worst pair, spread), round trips per 10^6 replica-sweeps, chi_SG at T = 0.5 with its
halves check (`overlap_tempering`).

    python bench/bench_ladder.py [--quick]

One torch thread; about 20 min on the loaded 2-core CPU (--quick: 4 chains, 1200 sweeps).
Writes bench/results/ladder.json.
"""

from __future__ import annotations

import time

import torch

import benchlib
from lattherm.mcmc.samplers import LADDER_PILOT_ROUNDS, ladder_pilot_sweeps, overlap_tempering
from lattherm.systems import build_system

SYSTEM = {"model": "edwards_anderson", "lattice": "square", "couplings": "pm_j", "train_size": [16, 16],
          "coupling_seed": 1}
LADDER = [20.0, 5.0, 3.0, 2.5, 2.0, 1.7, 1.5, 1.3, 1.15, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
RUNGS = 24


def run(rungs: int | None, chains: int, sweeps: int) -> dict:
    system = build_system({**SYSTEM, "mcmc": {"temperatures": LADDER, "chains": chains, "sweeps": sweeps,
                                              "burn_in": sweeps // 5, "rungs": rungs}})
    t0 = time.perf_counter()
    _, summary = overlap_tempering(system, seed=0)
    seconds = time.perf_counter() - t0
    acceptance = summary.exchange_acceptance_colder.dropna().to_numpy()
    coldest = summary.iloc[-1]
    n_rungs = len(summary)
    pilot = 0 if rungs is None else LADDER_PILOT_ROUNDS * ladder_pilot_sweeps(sweeps)
    replica_sweeps = n_rungs * chains * (sweeps + pilot)
    return {"rungs": n_rungs, "sweeps": sweeps, "pilot_sweeps": pilot, "replica_sweeps": replica_sweeps,
            "seconds": seconds, "worst_acceptance": float(acceptance.min()), "best_acceptance": float(acceptance.max()),
            "acceptance": acceptance.tolist(), "round_trips": int(coldest.round_trips),
            "round_trips_per_1e6_replica_sweeps": 1e6 * int(coldest.round_trips) / replica_sweeps,
            "chi_sg_coldest": float(coldest.chi_sg), "chi_sg_coldest_err": float(coldest.chi_sg_err),
            "halves_sigma_coldest": float(coldest.halves_sigma),
            "temperatures": summary.temperature.tolist()}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--sweeps", type=int, default=2000, help="sweeps of the configured ladder")
    args = p.parse_args()
    torch.set_num_threads(1)
    chains, sweeps = (4, 1200) if args.quick else (args.chains, args.sweeps)
    configured = run(None, chains, sweeps)
    # equal replica-sweeps: the tuned ladder has more rungs and pays its pilots
    tuned_sweeps = len(LADDER) * sweeps // RUNGS - LADDER_PILOT_ROUNDS * ladder_pilot_sweeps(sweeps)
    tuned = run(RUNGS, chains, tuned_sweeps)
    for name, r in (("configured", configured), ("tuned", tuned)):
        print(f"{name}: {r['rungs']} rungs x {r['sweeps']} sweeps, worst acceptance {r['worst_acceptance']:.3f}, "
              f"{r['round_trips_per_1e6_replica_sweeps']:.1f} round trips per 1e6 replica-sweeps, "
              f"halves {r['halves_sigma_coldest']:.1f} sigma; {r['seconds']:.0f} s", flush=True)
    headline = [
        {"metric": "EA 16x16 PT worst exchange acceptance, tuned ladder (24 rungs) vs the configured 15",
         "value": tuned["worst_acceptance"], "baseline": configured["worst_acceptance"],
         "ratio": tuned["worst_acceptance"] / configured["worst_acceptance"]},
        {"metric": "EA 16x16 PT round trips per replica-sweep (pilots charged), tuned ladder vs configured",
         "value": tuned["round_trips_per_1e6_replica_sweeps"], "baseline": configured["round_trips_per_1e6_replica_sweeps"],
         "ratio": tuned["round_trips_per_1e6_replica_sweeps"] / max(configured["round_trips_per_1e6_replica_sweeps"], 1e-300)},
    ]
    benchlib.write_result("ladder", {"system": SYSTEM, "temperatures": LADDER, "rungs": RUNGS, "chains": chains,
                                     "sweeps": sweeps, "torch_threads": 1, "quick": args.quick},
                          {"configured": configured, "tuned": tuned, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
