"""CE energies per second: batched torch ClusterExpansionHamiltonian vs icet's ce.predict loop.

    python bench/bench_ce_energy.py [--quick] [--full] [--threads 1]

Batch 4096 on the 128-site cell (4x4x8 primitive FCC) and, with --full, on 1024 sites (8x8x16).
The icet baseline calls ``ce.predict(atoms)`` per structure in a Python loop (atoms prepared
beforehand); it is timed on a subset and given as a per-structure rate. Median of repeats.
Writes bench/results/ce_energy.json.
"""

from __future__ import annotations

import time

import benchlib
import numpy as np
import torch

from lattherm.ce.published import published_cluster_expansion
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice

def timings(fn, repeats):
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench_size(ce, size, batch, n_icet, repeats, seed):
    lattice = make_lattice("fcc", size, a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (batch, lattice.n_sites), generator=gen)
    ham.energy(x)  # warm-up
    torch_s = timings(lambda: ham.energy(x), repeats)
    atoms = [lattice.to_atoms(row, ("Cu", "Au")) for row in x[:n_icet].numpy()]
    icet_s = timings(lambda: [ce.predict(a) for a in atoms], repeats)
    check = np.abs(ham.energy_per_site(x[:n_icet]).numpy() - np.array([ce.predict(a) for a in atoms])).max()
    torch_rate = batch / float(np.median(torch_s))
    icet_rate = n_icet / float(np.median(icet_s))
    return {"n_sites": lattice.n_sites, "repeats": list(size), "batch": batch, "n_icet_structures": n_icet,
            "torch_seconds": torch_s, "icet_seconds": icet_s, "torch_structures_per_s": torch_rate,
            "icet_structures_per_s": icet_rate, "ratio": torch_rate / icet_rate,
            "max_abs_diff_ev_per_site": float(check)}


def main() -> None:
    parser = benchlib.parser(__doc__)
    parser.add_argument("--full", action="store_true", help="also 1024 sites")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (icet is single-threaded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, n_icet = (args.repeats, 200) if args.quick else (max(args.repeats, 15), 1000)
    ce = published_cluster_expansion()
    sizes = [(4, 4, 8)] + ([(8, 8, 16)] if args.full else [])
    results = [bench_size(ce, size, 4096, n_icet, repeats, seed=k) for k, size in enumerate(sizes)]
    for r in results:
        print(f"N={r['n_sites']}: torch {r['torch_structures_per_s']:.0f}/s, icet {r['icet_structures_per_s']:.0f}/s, "
              f"ratio {r['ratio']:.1f}x (max |dE| {r['max_abs_diff_ev_per_site']:.1e} eV/site)")
    headline = [{"metric": f"CE energies/s, {r['n_sites']} sites, batch {r['batch']}, torch ({args.threads} thread) "
                           "vs icet ce.predict loop",
                 "value": r["torch_structures_per_s"], "baseline": r["icet_structures_per_s"], "ratio": r["ratio"]}
                for r in results]
    benchlib.write_result("ce_energy", {"quick": args.quick, "full": args.full, "repeats": repeats,
                                        "threads": args.threads, "statistic": "median"},
                          {"sizes": results, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
