"""Can the transformer draw ordered L1_0 CuAu on 128 sites? Attention range against fitting ordered examples.

    python bench/bench_attention_range.py [--quick] [--steps 100] [--lr 3e-3]

Issue 11: the neural F(x, T) transferred to the 4x4x8 cell (128 sites) is 4-5 meV/site high at
x = 0.5, 600 K, where batched MCMC is fully ordered: the model draws only disordered configurations.
This bench asks whether the transformer can represent the ordered phase at all, and what limits it.
Ordered examples come from batched swap MCMC (`lattherm.mcmc.samplers.run_chains`, 16 chains,
from random starts, 600 K, canonical x = 0.5; the L1_0 order parameter of each is recorded);
each model (the config's transformer with physics logits at 600 K, fresh weights, seed 0) is fitted
to them by the forward KL alone (Adam, ``--steps`` of the mean -ln q of all examples) and reported:
the mean -ln q of the examples (NLL, nats per configuration) at the start, the end and every 25
steps, the mean energy per site of 128 of its own samples, CPU seconds. Variants: attention over 2
neighbour shells (config.yaml's mam_physics), 4 shells, every placed site (global), and 2 shells
with 2 layers of width 64. Baseline in the same run: the physics logits alone (the network's
output zeroed), in the raster order the model samples in and in a compact order (sites by distance
from the first), so the cost of the order is separated from that of the network.
One CPU thread. Writes bench/results/attention_range.json.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import benchlib
from lattherm.ce.published import write_published_ce
from lattherm.mcmc.samplers import run_chains
from lattherm.models import build_model
from lattherm.models.physics import attach_physics, set_physics_beta
from lattherm.observables import standard_observables
from lattherm.systems import build_system

BASE = {"kind": "transformer", "n_head": 2, "physics_logits": True, "lattice_symmetric": False, "d_model": 32,
        "n_layer": 1, "attention_shells": 2}  # config.yaml's mam_physics
VARIANTS = {"2 shells (mam_physics)": {}, "4 shells": {"attention_shells": 4}, "global": {"attention_shells": None},
            "2 shells, 2 layers of 64": {"d_model": 64, "n_layer": 2}}
TEMPERATURE = 600.0


def nll(model, x: torch.Tensor, order: torch.Tensor | None = None) -> torch.Tensor:
    """-ln q of each row of x along ``order`` (the model's raster order if None), (B,)."""
    conditionals = model.log_conditionals(x, n_ones=int(x[0].sum()), order=order)
    return -conditionals.gather(2, model.tokens(x)[..., None])[..., 0].sum(1)


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--sweeps", type=int, default=400)
    args = p.parse_args()
    if args.quick:
        args.steps, args.chains, args.sweeps = 10, 4, 100
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_attention_range_"))
    system = build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "ensemble": "canonical",
                           "concentration": 0.5, "train_size": [4, 4, 8], "temperatures": [TEMPERATURE]},
                          ce_file=write_published_ce(work / "cuau.json"))
    beta = system.beta(TEMPERATURE)
    order_l10 = standard_observables(system.lattice)["order_l10"]
    chains = run_chains(system.hamiltonian, beta, args.chains, args.sweeps, move="swap", n_ones=system.n_ones,
                        seed=1, observables={"order_l10": order_l10}, progress=False)
    examples = chains.final
    examples_l10 = order_l10(examples).tolist()
    energy = lambda x: float(system.hamiltonian.energy(x).double().mean() / system.n_sites)  # noqa: E731
    print(f"examples: L1_0 order {np.round(examples_l10, 2).tolist()}, E/site {energy(examples):.4f} eV")

    torch.manual_seed(0)
    physics = attach_physics(build_model(BASE, system.cell), system.hamiltonian)
    set_physics_beta(physics, beta)
    with torch.no_grad():
        physics.head.weight.zero_()
        physics.head.bias.zero_()
        distance = system.lattice.distances[0]
        compact = torch.as_tensor(np.lexsort((np.arange(system.n_sites), np.round(distance, 6))))
        baseline = {"physics logits alone, raster order": float(nll(physics, examples).mean()),
                    "physics logits alone, compact order": float(nll(physics, examples, compact).mean())}
    print(baseline)

    fits = {}
    for name, change in VARIANTS.items():
        torch.manual_seed(0)
        model = attach_physics(build_model({**BASE, **change}, system.cell), system.hamiltonian)
        set_physics_beta(model, beta)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        curve, t0 = [], time.process_time()
        for step in range(args.steps + 1):
            loss = nll(model, examples).mean()
            if step % 25 == 0 or step == args.steps:
                curve.append({"step": step, "nll": loss.item()})
            if step == args.steps:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = time.process_time() - t0
        with torch.no_grad():
            own, _ = model.sample(128, n_ones=system.n_ones, generator=torch.Generator().manual_seed(2))
        fits[name] = {"spec": {**BASE, **change}, "nll_curve": curve, "nll_start": curve[0]["nll"],
                      "nll_end": curve[-1]["nll"], "own_samples_energy_per_site": energy(own),
                      "own_samples_l10": float(order_l10(own).mean()), "cpu_seconds": seconds}
        print(f"{name}: NLL {curve[0]['nll']:.1f} -> {curve[-1]['nll']:.1f} nats, own samples E/site "
              f"{energy(own):.4f} eV, L1_0 order {fits[name]['own_samples_l10']:.2f}, {seconds:.0f} CPU s", flush=True)

    reference = baseline["physics logits alone, raster order"]
    headline = [{"metric": f"-ln q of ordered L1_0 examples (128 sites, 600 K) after {args.steps} forward-KL steps, "
                           f"{name} vs physics logits alone", "value": fit["nll_end"], "baseline": reference,
                 "ratio": fit["nll_end"] / reference} for name, fit in fits.items()]
    benchlib.write_result("attention_range", {**vars(args), "out": None, "temperature": TEMPERATURE,
                                              "torch_threads": 1, "base": BASE, "variants": VARIANTS},
                          {"examples_l10": examples_l10, "examples_energy_per_site": energy(examples),
                           "physics_only_nll": baseline, "fits": fits, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
