"""Order-disorder temperatures of the published CuAu cluster expansion, and their cell-size trend.

    python bench/bench_tc.py [--quick] [--cells 4 5 6] [--concentrations 0.5 0.25] [--threads 1]

Both transitions are strongly first order, so T_c is where the free energies of the ordered
and the disordered phase cross (:mod:`lattherm.mcmc.coexistence`): canonical batched
parallel-swap MCMC, the disordered branch from random starts from T = inf (ln C(N, n)), the
ordered branch from the perfect L1_0 / L1_2 phase anchored at 250 K (ln g - beta E0 - ln p0),
MBAR along each branch with error bars, crossing with its statistical error and, where one
branch is extrapolated across a hysteresis gap, the extrapolation's systematic error. The
hysteresis bracket (hottest ordered / coldest disordered temperature in branch) is reported
too. Cells: conventional cubic FCC n x n x n (4 n^3 sites). The paper config's cell is 6x6x6
(864 sites). Writes bench/results/tc.json.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

import benchlib
from lattherm.ce.published import published_cluster_expansion
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice
from lattherm.mcmc.coexistence import BranchSettings, transition

PHASES = {0.5: "L1_0 AB", 0.25: "L1_2 A3B"}
HIGH = [20000.0, 8000.0, 4000.0, 2500.0, 1800.0, 1400.0, 1100.0, 950.0]  # T = inf .. the window, disordered
LOW = [250.0, 400.0, 500.0]  # anchor .. the window, ordered
WINDOWS = {0.5: (575.0, 825.0), 0.25: (650.0, 900.0)}


def window(x: float, step: float) -> list[float]:
    lo, hi = WINDOWS[x]
    return [float(t) for t in np.arange(lo, hi + step / 2, step)]


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cells", type=int, nargs="+", default=[4, 5, 6], help="cubic cells n x n x n")
    p.add_argument("--concentrations", type=float, nargs="+", default=[0.5, 0.25])
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="independent repeats (error-bar check)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    settings = BranchSettings(chains=32, sweeps=300, burn_in=50) if args.quick else BranchSettings(64, 500, 100)
    step = 50.0 if args.quick else 25.0
    ce = published_cluster_expansion()
    rows, branches = [], []
    for n_cell in args.cells:
        lattice = make_lattice("fcc_cubic", (n_cell,) * 3, a=3.8)
        ham = ClusterExpansionHamiltonian(ce, lattice).to(args.device)
        n = lattice.n_sites
        for x in args.concentrations:
            phase, temps = PHASES[x], window(x, step)
            n_ones = round(x * n)
            for seed in args.seeds:
                start = time.perf_counter()
                ordered, disordered, found = transition(ham, lattice, n_ones, phase, LOW + HIGH, temps, settings, seed)
                seconds = time.perf_counter() - start
                result = {"cell": f"fcc_cubic {n_cell}x{n_cell}x{n_cell}", "n_sites": n, "concentration": x,
                          "phase": phase, "seed": seed, "seconds": seconds, **found}
                rows.append(result)
                for table in (ordered, disordered):
                    branches.extend(table.assign(cell=result["cell"], concentration=x, seed=seed)
                                    .replace({np.inf: None}).to_dict("records"))
                print(f"{result['cell']} ({n}) x = {x}: T_c = {result['t_c']:.1f} +- {result['t_c_err']:.1f} K "
                      f"(extrapolation {result['t_c_extrapolation']:.1f} K), hysteresis: ordered up to "
                      f"{result['ordered_t_max']:.0f} K, disordered down to {result['disordered_t_min']:.0f} K, "
                      f"latent heat {1e3 * result['latent_heat_per_site']:.1f} meV/site, {seconds:.0f} s", flush=True)
    headline = []
    for x in args.concentrations:
        for r in (r for r in rows if r["concentration"] == x):
            err = math.hypot(r["t_c_err"], r["t_c_extrapolation"])
            headline.append({"metric": f"T_c x = {x} {r['phase']} {r['cell']} ({r['n_sites']} sites) seed {r['seed']}, "
                                       f"K (+- {err:.1f}: statistical and extrapolation)",
                             "value": r["t_c"], "error": err, "baseline": None, "ratio": None})
    benchlib.write_result("tc", {"quick": args.quick, "device": args.device, "threads": args.threads,
                                 "chains": settings.chains, "sweeps": settings.sweeps, "burn_in": settings.burn_in,
                                 "window_step_K": step, "cells": args.cells, "concentrations": args.concentrations,
                                 "seeds": args.seeds},
                          {"rows": rows, "headline": headline, "branches": branches}, args.out)


if __name__ == "__main__":
    main()
