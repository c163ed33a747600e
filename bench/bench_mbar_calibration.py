"""Calibration of the MCMC free-energy error bars: MBAR's asymptotic bar against the workflow's
(the larger of it and the jackknife over chains), over independent reference scans.

    python bench/bench_mbar_calibration.py [--quick] [--scans 24]

For each system, ``--scans`` reference scans (:func:`lattherm.mcmc.samplers.reference_scan`,
seeds 0, 1, ...) with config.yaml's MCMC settings: 4x4 Ising (independent heat-bath chains) and
the +-J EA 4x4 glass of coupling seed 1 (parallel tempering over a tuned ladder). At the coldest
temperature, the z-score of ln Z against enumeration with each bar; a calibrated bar gives an
rms near 1 (with 15 jackknife degrees of freedom, t's rms 1.07). Writes
bench/results/mbar_calibration.json.
"""

from __future__ import annotations

import numpy as np
import torch

import benchlib
from lattherm.exact.enumeration import exact_thermo
from lattherm.mcmc.integration import reference_log_z
from lattherm.mcmc.mbar import mbar_log_z, thinned_chains
from lattherm.mcmc.samplers import reference_scan
from lattherm.systems import build_system

MCMC = {"chains": 16, "sweeps": 600, "burn_in": 100}  # config.yaml's
SYSTEMS = {
    "ising_4x4": {"model": "ising", "lattice": "square", "train_size": [4, 4], "temperatures": [1.6],
                  "mcmc": {"temperatures": [20.0, 10.0, 6.0, 4.5, 3.6, 3.2, 2.9, 2.6, 2.4, 2.269, 2.15, 2.0, 1.8, 1.6],
                           **MCMC}},
    "ea_4x4_seed1": {"model": "edwards_anderson", "lattice": "square", "couplings": "pm_j", "coupling_seed": 1,
                     "train_size": [4, 4], "temperatures": [0.5],
                     "mcmc": {"temperatures": [20.0, 5.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.5], "rungs": 12, **MCMC}},
}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--scans", type=int, default=24)
    args = p.parse_args()
    torch.set_num_threads(1)
    scans = 3 if args.quick else args.scans
    results, headline = {}, []
    for name, block in SYSTEMS.items():
        system = build_system(block)
        z = {"asymptotic": [], "scan": []}
        for seed in range(scans):
            table, samples = reference_scan(system, seed=seed)
            betas = table.beta.to_numpy()
            exact = exact_thermo(system.hamiltonian, betas[-1:]).log_z.iloc[0]
            chains = [thinned_chains(np.stack([c.energy.to_numpy(float) for _, c in group.groupby("chain")]))
                      for _, group in samples.groupby("beta", sort=True)]
            for bar, over_chains in (("asymptotic", False), ("scan", True)):
                log_z, err = mbar_log_z(betas, chains, reference_log_z(system.n_sites), over_chains=over_chains)
                z[bar].append(float((log_z[-1] - exact) / err[-1]))
            print(f"{name} seed {seed}: z asymptotic {z['asymptotic'][-1]:+.2f}, scan {z['scan'][-1]:+.2f}", flush=True)
        rms = {bar: float(np.sqrt(np.mean(np.square(v)))) for bar, v in z.items()}
        results[name] = {"temperature": float(1 / betas[-1]), "z": z, "rms": rms}
        headline.append({"metric": f"rms z of ln Z at the coldest T over {scans} scans, {name}: workflow bar "
                                   "(max of asymptotic and jackknife over chains) vs MBAR asymptotic",
                         "value": rms["scan"], "baseline": rms["asymptotic"], "ratio": rms["scan"] / rms["asymptotic"]})
        print(f"{name}: rms z asymptotic {rms['asymptotic']:.2f}, scan {rms['scan']:.2f}")
    benchlib.write_result("mbar_calibration", {"scans": scans, "mcmc": MCMC, "quick": args.quick, "torch_threads": 1},
                          {**results, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
