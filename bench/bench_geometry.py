"""Geometry that scales: time and peak memory of building lattices, neighbour shells and bonds.

    python bench/bench_geometry.py [--quick] [--full] [--repeats 3]

lattherm: the O(N) construction (shells from the n_basis reference rows of the minimum-image
matrix, bonds of one primitive cell translated by cell arithmetic, vectorised supercell and
Ising tables). Baseline: the former dense construction in the same run (N x N x 27 x 3
minimum-image candidates, bonds by an O(N^2) scan per image shift, ASE's per-cell repeat loop,
per-bond Python tables), reproduced here by swapping those functions back in.

Cases: (a) ``make_lattice("square", (L, L))`` + ``Ising``; (b) ``fcc_cubic`` n x n x n +
``neighbour_pairs(1)``; (c) the other system consumers, lattherm only: the cluster-expansion
Hamiltonian with the published CuAu CE on conventional FCC cells and the dense
Sherrington-Kirkpatrick matrix. Each figure comes from a fresh subprocess: peak memory is
``ru_maxrss`` after the build minus after the imports; time is the median of ``--repeats`` builds
(each on a new lattice, nothing cached; one build for the slow baseline cases and case (c)).
--quick: baseline up to 32x32 and 6^3 conventional cells (864 sites); --full: 64x64 (about
10 GB) and 8^3 (2048 sites), CE at 16,384 sites and SK at 8192. Writes bench/results/geometry.json.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import benchlib

HERE = Path(__file__).resolve().parent


# -- the former dense construction, swapped in for the baseline -------------------------------
def _dense_shell_distances(self, n_shells):
    import numpy as np

    from lattherm.lattices import LatticeError

    distances = self.distances[self.distances > 1e-6]
    _, first = np.unique(np.round(distances, 6), return_index=True)
    d = distances[first]
    if len(d) < n_shells:
        raise LatticeError(f"supercell {self.repeats} has only {len(d)} neighbour shells")
    return d[:n_shells]


def _dense_neighbour_pairs(self, shell=1):
    import numpy as np

    target = self.shell_distances(shell)[shell - 1]
    frac = self.fractional
    recip = np.linalg.inv(self.cell).T
    reach = int(np.ceil(target / np.min(1.0 / np.linalg.norm(recip, axis=1)))) + 1
    rng = [range(-reach, reach + 1) if p else range(0, 1) for p in self.atoms.pbc]
    shifts = np.array([(i, j, k) for i in rng[0] for j in rng[1] for k in rng[2]], dtype=float)
    pairs = []
    for t in shifts:
        vec = (frac[None, :, :] - frac[:, None, :] + t) @ self.cell
        dist = np.linalg.norm(vec, axis=-1)
        ii, jj = np.nonzero(np.abs(dist - target) < 1e-4)
        pairs.append(np.stack([ii, jj], axis=1))
    allpairs = np.concatenate(pairs)
    keep = allpairs[:, 0] < allpairs[:, 1]
    self_bonds = allpairs[allpairs[:, 0] == allpairs[:, 1]]
    both = np.concatenate([allpairs[keep], self_bonds[: len(self_bonds) // 2]])
    order = np.lexsort((both[:, 1], both[:, 0]))
    return both[order].astype(np.int64)


def _loop_neighbour_tables(bonds, couplings, n_sites):
    import numpy as np

    neighbours = [[] for _ in range(n_sites)]
    coupling = [[] for _ in range(n_sites)]
    for (i, j), J in zip(bonds, couplings):
        neighbours[i].append(j)
        coupling[i].append(J)
        neighbours[j].append(i)
        coupling[j].append(J)
    z = {len(row) for row in neighbours}
    if len(z) != 1:
        raise ValueError(f"sites have unequal coordination {sorted(z)}; expected a uniform lattice")
    return np.asarray(neighbours, dtype=np.int64), np.asarray(coupling, dtype=np.float64)


def _use_dense_construction() -> None:
    import lattherm.hamiltonians.ising as ising
    import lattherm.lattices as lattices

    lattices._repeat = lambda primitive, repeats: primitive.repeat(repeats)
    lattices.Lattice.shell_distances = _dense_shell_distances
    lattices.Lattice.neighbour_pairs = _dense_neighbour_pairs
    ising._neighbour_tables = _loop_neighbour_tables


# -- one measurement in this (fresh) process --------------------------------------------------
def child(spec: dict) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from lattherm.hamiltonians.ising import Ising, SherringtonKirkpatrick
    from lattherm.lattices import make_lattice

    if spec["impl"] == "dense":
        _use_dense_construction()
    case = spec["case"]
    if case == "ce":
        from lattherm.ce.published import published_cluster_expansion
        from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian

        ce = published_cluster_expansion()

    def build():
        if case == "ising":
            lat = make_lattice("square", (spec["L"], spec["L"]))
            ham = Ising(lat)
            return {"n_sites": lat.n_sites, "n_bonds": len(ham.bonds), "z": int(ham.neighbours.shape[1]),
                    "bonds_digest": int(np.asarray(ham.bonds).astype(np.int64).sum() % (1 << 31))}
        if case == "fcc":
            lat = make_lattice("fcc_cubic", (spec["n"],) * 3, a=3.8)
            pairs = lat.neighbour_pairs(1)
            return {"n_sites": lat.n_sites, "n_bonds": len(pairs), "bonds_digest": int(pairs.sum() % (1 << 31))}
        if case == "ce":
            lat = make_lattice("fcc_cubic", tuple(spec["size"]), a=3.8)
            ham = ClusterExpansionHamiltonian(ce, lat, ("Cu", "Au"))
            return {"n_sites": lat.n_sites, "n_orbits": ham.n_orbits}
        if case == "sk":
            ham = SherringtonKirkpatrick(spec["n_sites"])
            return {"n_sites": ham.n_sites}
        raise ValueError(case)

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        info = build()
        times.append(time.perf_counter() - start)
        if not times[1:]:
            peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    return {**spec, **info, "seconds": times, "median_seconds": float(np.median(times)), "peak_mib": peak_mib}


def measure(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                         cwd=HERE)
    if out.returncode != 0:
        raise RuntimeError(f"{spec}: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{spec['case']:6s} {spec['impl']:6s} {result['n_sites']:8d} sites  {result['median_seconds']:8.3f} s  "
          f"{result['peak_mib']:9.1f} MiB", flush=True)
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return
    parser = benchlib.parser(__doc__)
    parser.add_argument("--full", action="store_true", help="also the 10 GB dense 64x64 baseline and larger CE/SK")
    parser.set_defaults(repeats=3)
    args = parser.parse_args()
    dense_L = [16, 32] + ([64] if args.full else [])
    dense_n = [4, 6] + ([8] if args.full else [])
    new_L = sorted(set(dense_L + [256, 1000]))
    new_n = sorted(set(dense_n + [16]))
    ising = {impl: {L: measure({"case": "ising", "impl": impl, "L": L,
                                "repeats": args.repeats if impl == "new" or L <= 16 else 1})
                    for L in (new_L if impl == "new" else dense_L)} for impl in ("new", "dense")}
    fcc = {impl: {n: measure({"case": "fcc", "impl": impl, "n": n,
                              "repeats": args.repeats if impl == "new" or n <= 4 else 1})
                  for n in (new_n if impl == "new" else dense_n)} for impl in ("new", "dense")}
    ce_sizes = [(8, 8, 16)] + ([(16, 16, 16)] if args.full else [])
    ce = [measure({"case": "ce", "impl": "new", "size": list(s), "repeats": 1}) for s in ce_sizes]
    sk = [measure({"case": "sk", "impl": "new", "n_sites": n, "repeats": 1})
          for n in [4096] + ([8192] if args.full else [])]

    headline = []
    for name, table, key, label in (("ising", ising, "L", "square {0}x{0} lattice + Ising"),
                                    ("fcc", fcc, "n", "fcc_cubic {0}x{0}x{0} lattice + neighbour_pairs(1)")):
        for size, d in table["dense"].items():
            n = table["new"][size]
            assert (n["n_bonds"], n["bonds_digest"]) == (d["n_bonds"], d["bonds_digest"]), (name, size)
            what = label.format(size) + f" ({n['n_sites']} sites)"
            headline.append({"metric": f"build seconds, {what}, O(N) vs dense", "value": n["median_seconds"],
                             "baseline": d["median_seconds"], "ratio": n["median_seconds"] / d["median_seconds"]})
            headline.append({"metric": f"peak MiB, {what}, O(N) vs dense", "value": n["peak_mib"],
                             "baseline": d["peak_mib"], "ratio": n["peak_mib"] / max(d["peak_mib"], 1e-9)})
        for size, n in table["new"].items():
            if size not in table["dense"]:
                what = label.format(size) + f" ({n['n_sites']} sites)"
                headline.append({"metric": f"build seconds, {what}, O(N) (dense: out of reach)",
                                 "value": n["median_seconds"], "baseline": None, "ratio": None})
                headline.append({"metric": f"peak MiB, {what}, O(N) (dense: out of reach)", "value": n["peak_mib"],
                                 "baseline": None, "ratio": None})
    for r in ce:
        headline.append({"metric": f"build seconds, CuAu CE Hamiltonian fcc_cubic {'x'.join(map(str, r['size']))} "
                                   f"({r['n_sites']} sites), {r['peak_mib']:.0f} MiB", "value": r["median_seconds"],
                         "baseline": None, "ratio": None})
    for r in sk:
        headline.append({"metric": f"build seconds, Sherrington-Kirkpatrick {r['n_sites']} sites (dense N x N), "
                                   f"{r['peak_mib']:.0f} MiB", "value": r["median_seconds"], "baseline": None,
                         "ratio": None})
    benchlib.write_result("geometry", {"quick": args.quick, "full": args.full, "repeats": args.repeats,
                                       "statistic": "median", "memory": "ru_maxrss after build - after imports",
                                       "dense_square_L": dense_L, "dense_fcc_cubic_n": dense_n},
                          {"headline": headline, "ising": {k: list(v.values()) for k, v in ising.items()},
                           "fcc_cubic": {k: list(v.values()) for k, v in fcc.items()}, "cluster_expansion": ce,
                           "sherrington_kirkpatrick": sk}, args.out)


if __name__ == "__main__":
    main()
