"""Effective samples per second near the transition: trained neural sampler vs MCMC.

    python bench/bench_ess_rate.py [--quick] [--cuau-temperature 700] [--device cpu|cuda]

Systems: Ising 16x16 at beta_c, and CuAu on the 4x4x8 primitive FCC cell (128 sites, the
published CE) in the canonical ensemble at x = 0.5 and 700 K (the heat-capacity peak of a torch
swap-move scan on this cell over 500-1100 K in 50 K steps; the peak lies between 650 and 750 K).

Neural sampler: the MAM transformer trained with :func:`lattherm.training.variational.train`
for a fixed number of steps (training seconds reported separately, not charged to the rate);
effective samples per second = ESS per sample x samples per second of ``sample`` (energies
included), ESS from importance weights of fresh samples. MCMC baselines with the batched torch
samplers: Ising: checkerboard heat bath and Wolff clusters; CuAu: canonical swaps. Effective
samples per second = recorded samples / (2 tau_int of the energy) / seconds, one sample per
sweep (Wolff: per cluster flip) and chain, equilibration prefix dropped.
Writes bench/results/ess_rate.json.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

import benchlib
from lattherm.ce.published import write_published_ce
from lattherm.exact.kaufman import BETA_C
from lattherm.mcmc.analysis import summarize
from lattherm.mcmc.samplers import run_chains
from lattherm.models import build_model
from lattherm.sampling.estimators import ess_per_sample, log_weights
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train


def settings(quick: bool) -> dict:
    if quick:
        return {"train_steps": 200, "batch": 64, "lr": 2e-3, "anneal": 0.97, "n_samples": 1024, "sample_batch": 256,
                "transformer": {"d_model": 32, "n_head": 2, "n_layer": 2},
                "mcmc_chains": 64, "mcmc_sweeps": 300, "wolff_steps": 300}
    return {"train_steps": 3000, "batch": 256, "lr": 1e-3, "anneal": 0.998, "n_samples": 20000, "sample_batch": 4096,
            "transformer": {"d_model": 64, "n_head": 4, "n_layer": 3},
            "mcmc_chains": 1024, "mcmc_sweeps": 4000, "wolff_steps": 4000}


def neural_rate(system, temperature, cfg, repeats, device) -> dict:
    beta = system.beta(temperature)
    config = TrainConfig(steps=cfg["train_steps"], batch_size=cfg["batch"], lr=cfg["lr"], anneal=cfg["anneal"],
                         temperature=temperature, device=device, checkpoint_every=cfg["train_steps"])
    torch.manual_seed(0)
    model = build_model({"kind": "transformer", **cfg["transformer"]}, system.lattice)
    log = train(model, system, config, progress=False).log
    hamiltonian = system.hamiltonian.to(device)
    gen = torch.Generator(device=device).manual_seed(5)

    def draw():
        x, log_q = model.sample(cfg["sample_batch"], n_ones=system.n_ones, generator=gen)
        return log_weights(hamiltonian.energy(x), log_q, beta)

    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    seconds, _ = benchlib.median_time(draw, repeats, sync)
    log_w = torch.cat([draw() for _ in range(max(1, cfg["n_samples"] // cfg["sample_batch"]))])
    ess = ess_per_sample(log_w)
    rate = cfg["sample_batch"] / seconds
    return {"sampler": "neural (MAM transformer)", "train_config": asdict(config),
            "train_seconds": float(log.wall_time.iloc[-1]), "samples_per_second": rate, "ESS": ess,
            "n_samples_ess": len(log_w), "effective_samples_per_second": ess * rate}


def mcmc_rate(system, temperature, move, n_steps, cfg) -> dict:
    res = run_chains(system.hamiltonian, system.beta(temperature), cfg["mcmc_chains"], n_steps, move=move,
                     n_ones=system.n_ones, seed=3, observables={}, progress=False)
    s = summarize(res.series["energy"])
    kept = res.series["energy"].shape[1] - s.n_discarded
    samples = cfg["mcmc_chains"] * kept
    seconds_kept = res.seconds * kept / res.series["energy"].shape[1]
    return {"sampler": f"MCMC {move}", "samples_per_second": samples / seconds_kept, "tau_int": s.tau_int,
            "n_samples": samples, "effective_samples_per_second": samples / (2 * s.tau_int) / seconds_kept,
            "chains": cfg["mcmc_chains"], "steps": n_steps}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--cuau-temperature", type=float, default=700.0, help="kelvin")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ce_file = write_published_ce(Path(tmp) / "cuau.json")
        systems = [
            ("Ising 16x16 beta_c", build_system({"model": "ising", "lattice": "square", "train_size": [16, 16]}),
             1.0 / BETA_C, ("flip", "wolff")),
            (f"CuAu 4x4x8 x=0.5 {args.cuau_temperature:.0f} K",
             build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "train_size": [4, 4, 8],
                           "ensemble": "canonical", "concentration": 0.5}, ce_file=ce_file),
             args.cuau_temperature, ("swap",)),
        ]
        for label, system, temperature, moves in systems:
            results = [neural_rate(system, temperature, cfg, args.repeats, args.device)]
            for move in moves:
                results.append(mcmc_rate(system, temperature, move,
                                         cfg["wolff_steps"] if move == "wolff" else cfg["mcmc_sweeps"], cfg))
            for r in results:
                rows.append({"system": label, "n_sites": system.n_sites, "temperature": temperature, **r})
                print(f"{label:24s} {r['sampler']:26s} {r['samples_per_second']:10.1f} samples/s, "
                      f"{r['effective_samples_per_second']:10.2f} eff./s")
    headline = []
    for label, *_ in systems:
        neural, *mcmc = [r for r in rows if r["system"] == label]
        for m in mcmc:
            headline.append({"metric": f"eff. samples/s {label}, neural ({neural['train_seconds']:.0f} s training, "
                                       f"not charged) vs {m['sampler']}",
                             "value": neural["effective_samples_per_second"],
                             "baseline": m["effective_samples_per_second"],
                             "ratio": neural["effective_samples_per_second"] / m["effective_samples_per_second"]})
    benchlib.write_result("ess_rate", {"quick": args.quick, "repeats": args.repeats, "device": args.device,
                                       "threads": args.threads, "cuau_temperature_K": args.cuau_temperature,
                                       "ising_beta": BETA_C, **cfg},
                          {"rows": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
