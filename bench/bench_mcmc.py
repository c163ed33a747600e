"""MCMC throughput on the CuAu cluster expansion: batched torch samplers vs icet's mchammer.

    python bench/bench_mcmc.py [--quick] [--threads 1] [--temperature 700] [--device cpu|cuda]
                               [--ensembles canonical,semi_grand,vcsgc] [--out bench/results/mcmc.json]

Same published CE, same cell, same temperature (default 700 K: the heat-capacity peak of
canonical x = 0.5 on the 4x4x8 primitive cell). Cells: conventional cubic FCC 4x4x4 (256 sites)
and 6x6x6 (864 sites); mchammer's incremental energies are checked against full recomputation
before every run (:func:`lattherm.mcmc.mchammer_runs.check_incremental_energies`). Ensembles:
canonical x = 0.5 (torch: parallel bit-sliced swaps, ``Swap``; mchammer: CanonicalEnsemble) and
semi-grand at dmu = 0 (torch: colour-class heat-bath flips, ``Flip``; mchammer:
SemiGrandCanonicalEnsemble); variance-constrained semi-grand (VCSGC) at phi = -1, kappa = 200
(<c> near 1/2; torch: ``VarianceConstrainedFlip``, colour-class energy changes bit-sliced, the
sites of a class decided in turn; mchammer: VCSGCEnsemble), where <c> is compared as well.

Trial steps are counted as mchammer counts them: one proposed flip, or one proposed exchange of
two unlike species, accepted or not. Torch flips: chains x sweeps x N (every site of every chain
is tried once per sweep). Torch swaps: the exchanges of unlike species actually tried
(``Swap.last_proposed``; a random pair of like species is a null move and is not counted).
mchammer: one chain, its own count. Effective samples of the energy per second,
samples / (2 tau_int) / seconds, one sample per sweep per chain, tau_int in sweeps
(equilibration prefix detected and dropped): serial random updates and parallel colour-class
updates mix differently per trial, so both figures are reported. mchammer runs single-threaded;
use ``--threads 1`` for the torch side on a shared CPU (intra-op threads spin and stall there).
Writes bench/results/mcmc.json (``--ensembles vcsgc --out bench/results/mcmc_vcsgc.json``: the
VCSGC rows alone).
"""

from __future__ import annotations

import torch

import benchlib
from lattherm import K_B_EV
from lattherm.ce.published import published_cluster_expansion
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice
from lattherm.mcmc.analysis import summarize
from lattherm.mcmc.mchammer_runs import run_scan
from lattherm.mcmc.moves import Flip, Swap, VarianceConstrainedFlip
from lattherm.mcmc.samplers import run_chains
from lattherm.observables import composition

CELLS = (("fcc_cubic", (4, 4, 4)), ("fcc_cubic", (6, 6, 6)))
ENSEMBLES = ("canonical", "semi_grand", "vcsgc")
VCSGC = {"phi": -1.0, "kappa": 200.0}  # mchammer's phis={"Au": phi}: <c> ~ -phi / 2


def settings(quick: bool) -> dict:
    if quick:
        return {"chains": 2048, "sweeps": 120, "mchammer_steps_per_site": 600}
    return {"chains": 16384, "sweeps": 2000, "mchammer_steps_per_site": 5000}


def torch_run(hamiltonian, beta, ensemble, n_ones, cfg, seed) -> dict:
    move = {"canonical": lambda: Swap(hamiltonian, parallel=True), "semi_grand": lambda: Flip(hamiltonian),
            "vcsgc": lambda: VarianceConstrainedFlip(hamiltonian, **VCSGC)}[ensemble]()
    observables = {"composition": composition} if ensemble == "vcsgc" else {}
    res = run_chains(hamiltonian, beta, cfg["chains"], cfg["sweeps"], move=move, n_ones=n_ones, seed=seed,
                     observables=observables, progress=False)
    trials = float(move.last_proposed.sum()) if ensemble == "canonical" else float(res.trials)
    s = summarize(res.series["energy"])
    samples = res.series["energy"][:, s.n_discarded:].size
    # rates use the whole run's time scaled to the kept sweeps (the discarded prefix is burn-in)
    seconds_kept = res.seconds * (res.series["energy"].shape[1] - s.n_discarded) / res.series["energy"].shape[1]
    if ensemble == "vcsgc":  # the equilibration prefix detected on the energy, as for the energy
        c = summarize(res.series["composition"][:, s.n_discarded:], discard=0)
        extra = {"composition": c.mean, "composition_err": c.error}
    else:
        extra = {}
    return {"trial_steps_per_second": trials / res.seconds, "trials": trials,
            "pair_proposals_incl_like_species": float(res.trials) if ensemble == "canonical" else None,
            "tau_int": s.tau_int, "n_samples": samples,
            "effective_samples_per_second": samples / (2 * s.tau_int) / seconds_kept,
            "energy_per_site": s.mean / hamiltonian.n_sites, "energy_per_site_err": s.error / hamiltonian.n_sites,
            "acceptance": float(res.acceptance.mean()), "seconds": res.seconds, "chains": cfg["chains"],
            "sweeps": cfg["sweeps"], "move": type(move).__name__ + " (parallel, bit-sliced)", **extra}


def mchammer_run(ce, lattice, temperature, ensemble, cfg, seed) -> dict:
    kwargs = {"canonical": {"concentration": 0.5}, "semi_grand": {"dmu": 0.0}, "vcsgc": VCSGC}[ensemble]
    row = run_scan(ce, lattice, [temperature], ensemble, steps_per_site=cfg["mchammer_steps_per_site"], seed=seed,
                   **kwargs).iloc[0]
    n = lattice.n_sites
    seconds_kept = row.n_samples * n / row.trial_steps_per_second
    return {"trial_steps_per_second": float(row.trial_steps_per_second), "tau_int": float(row.tau_int),
            "n_samples": int(row.n_samples), "effective_samples_per_second": row.n_samples / (2 * row.tau_int) / seconds_kept,
            "energy_per_site": float(row.energy_per_site),
            "energy_per_site_err": float(row.get("energy_per_site_err", float("nan"))), "acceptance": float(row.acceptance),
            "steps_per_site": cfg["mchammer_steps_per_site"],
            **({"composition": float(row.composition), "composition_err": float(row.composition_err)}
               if ensemble == "vcsgc" else {})}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--temperature", type=float, default=700.0, help="kelvin")
    p.add_argument("--ensembles", default=",".join(ENSEMBLES), help=f"comma-separated, of {ENSEMBLES}")
    args = p.parse_args()
    ensembles = [e for e in args.ensembles.split(",") if e]
    if not ensembles or set(ensembles) - set(ENSEMBLES):
        p.error(f"--ensembles must name some of {ENSEMBLES}, got {args.ensembles!r}")
    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    ce = published_cluster_expansion()
    beta = 1.0 / (K_B_EV * args.temperature)
    rows = []
    lattice_sites = {}
    for kind, size in CELLS:
        lattice = make_lattice(kind, size, a=3.8)
        n = lattice_sites[(kind, size)] = lattice.n_sites
        ham = ClusterExpansionHamiltonian(ce, lattice).to(args.device)
        for ensemble in ensembles:
            h = SemiGrand(ham, 0.0) if ensemble == "semi_grand" else ham
            n_ones = n // 2 if ensemble == "canonical" else None
            for sampler, run in (("torch", lambda: torch_run(h, beta, ensemble, n_ones, cfg, seed=1)),
                                 ("mchammer", lambda: mchammer_run(ce, lattice, args.temperature, ensemble, cfg, seed=1))):
                r = {"sampler": sampler, "cell": f"{kind} {'x'.join(map(str, size))}", "n_sites": n,
                     "ensemble": ensemble, **run()}
                rows.append(r)
                print(f"{r['cell']:16s} {ensemble:10s} {sampler:8s} {r['trial_steps_per_second']:10.0f} trials/s, "
                      f"tau_int {r['tau_int']:.2f} sweeps, {r['effective_samples_per_second']:.1f} eff. samples/s, "
                      f"E/N {r['energy_per_site']:.5f} eV")
    headline = []
    for kind, size in CELLS:
        for ensemble in ensembles:
            t, m = ([r for r in rows if r["cell"].startswith(kind + " ") and r["n_sites"] == lattice_sites[(kind, size)]
                     and r["ensemble"] == ensemble and r["sampler"] == s][0] for s in ("torch", "mchammer"))
            for key, label in (("trial_steps_per_second", "trial steps/s"),
                               ("effective_samples_per_second", "eff. samples/s")):
                headline.append({"metric": f"{label} {t['cell']} ({t['n_sites']}) {ensemble} {args.temperature:.0f} K, "
                                           f"torch ({t['chains']} chains, total) vs mchammer (1 chain)",
                                 "value": t[key], "baseline": m[key], "ratio": t[key] / m[key]})
            sigma = (t["energy_per_site"] - m["energy_per_site"]) / (t["energy_per_site_err"] ** 2
                                                                        + m["energy_per_site_err"] ** 2) ** 0.5
            headline.append({"metric": f"energy per site {t['cell']} ({t['n_sites']}) {ensemble} "
                                       f"{args.temperature:.0f} K, torch vs mchammer (deviation {sigma:.2f} sigma)",
                             "value": t["energy_per_site"], "baseline": m["energy_per_site"], "ratio": None,
                             "deviation_sigma": sigma})
            if ensemble == "vcsgc":
                sigma = (t["composition"] - m["composition"]) / (t["composition_err"] ** 2
                                                                 + m["composition_err"] ** 2) ** 0.5
                headline.append({"metric": f"<c> {t['cell']} ({t['n_sites']}) vcsgc phi {VCSGC['phi']} kappa "
                                           f"{VCSGC['kappa']:.0f} {args.temperature:.0f} K, torch vs mchammer "
                                           f"(deviation {sigma:.2f} sigma)",
                                 "value": t["composition"], "baseline": m["composition"], "ratio": None,
                                 "deviation_sigma": sigma})
    benchlib.write_result("mcmc", {"quick": args.quick, "device": args.device, "threads": args.threads,
                                   "temperature_K": args.temperature, "dmu_semi_grand": 0.0, "concentration": 0.5,
                                   "vcsgc": VCSGC, "ensembles": ensembles, "cells": [f"{k} {s}" for k, s in CELLS],
                                   **cfg},
                          {"rows": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
