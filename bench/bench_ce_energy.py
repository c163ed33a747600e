"""CE energies per second: batched torch ClusterExpansionHamiltonian vs icet's ce.predict loop.

    python bench/bench_ce_energy.py [--quick] [--full] [--threads 1]

Batch 4096 on the 128-site cell (4x4x8 primitive FCC) and, with --full, on 1024 sites (8x8x16).
The icet baseline calls ``ce.predict(atoms)`` per structure in a Python loop (atoms prepared
beforehand); it is timed on a subset and given as a per-structure rate. Median of repeats.
Writes bench/results/ce_energy.json.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import icet
import numpy as np
import torch

from lattherm.ce.published import published_cluster_expansion
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.io import write_json
from lattherm.lattices import make_lattice

RESULT = Path(__file__).parent / "results" / "ce_energy.json"


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and icet structures")
    parser.add_argument("--full", action="store_true", help="also 1024 sites")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (icet is single-threaded)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, n_icet = (5, 200) if args.quick else (15, 1000)
    ce = published_cluster_expansion()
    sizes = [(4, 4, 8)] + ([(8, 8, 16)] if args.full else [])
    results = [bench_size(ce, size, 4096, n_icet, repeats, seed=k) for k, size in enumerate(sizes)]
    for r in results:
        print(f"N={r['n_sites']}: torch {r['torch_structures_per_s']:.0f}/s, icet {r['icet_structures_per_s']:.0f}/s, "
              f"ratio {r['ratio']:.1f}x (max |dE| {r['max_abs_diff_ev_per_site']:.1e} eV/site)")
    write_json(args.out, {
        "benchmark": "ce_energy", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version(), "torch_threads": args.threads, "device": "cpu"},
        "versions": {"torch": torch.__version__, "icet": icet.__version__, "numpy": np.__version__},
        "parameters": {"quick": args.quick, "full": args.full, "repeats": repeats, "statistic": "median"},
        "results": results,
    })


if __name__ == "__main__":
    main()
