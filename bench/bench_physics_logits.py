"""Physics-informed logits (issue 12, item 1): ESS and free-energy error with and without the
local Boltzmann factor in the logits, at the same training budget, same seed.

Cases: periodic Ising 4x4 and 8x8 at beta_c (exact F: Kaufman) and the published CuAu cluster
expansion on 16 fcc sites (2x2x4), canonical x = 0.5 at 700 K (exact F: enumeration of the
12870 configurations). MADE (width 4 per site, depth 2) in every case, the transformer of
config.yaml (``models.mam``) on the 16-site cells; spin-flip symmetrisation ``auto`` (on for
Ising, off for CuAu). Budget (both variants): ``--steps`` steps of ``--batch`` samples for MADE,
Adam lr 1e-3, anneal 0.98 (quick: 300 x 256). The transformer gets a fifth of the steps and
``--transformer-batch`` samples (default 128): with half the steps and batch 256 one transformer
run took 12 minutes on the shared 2-core CPU (load average ~8), and the whole script would have
run for over an hour. With the reduced budget it took 32 minutes there (about 10 on an idle
core), and the transformer rows are short-training figures.

    python bench/bench_physics_logits.py [--quick] [--steps N] [--batch B] [--transformer-batch B]

Figures per case and model: signed relative F error (F_IS - F) / |F| with its standard error,
ESS per sample (10^4 samples), training seconds; ratios physics / plain of ESS and of |error|.
Writes bench/results/physics_logits.json.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch
import yaml

import benchlib
from lattherm.ce.published import write_published_ce
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.models import build_model
from lattherm.sampling.evaluate import evaluate
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def exact_enumerated(system, temperature: float) -> float:
    import itertools

    n, k = system.n_sites, system.n_ones
    x = torch.zeros(math.comb(n, k), n, dtype=torch.long)
    for row, ones in enumerate(itertools.combinations(range(n), k)):
        x[row, list(ones)] = 1
    beta = system.beta(temperature)
    return -torch.logsumexp(-beta * system.hamiltonian.energy(x), 0).item() / beta


def run(spec: dict, system, temperature: float, exact: float, steps: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = build_model(spec, system.lattice)
    config = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, anneal=0.98, clip=1.0, temperature=temperature)
    t0 = time.perf_counter()
    result = train(model, system, config, progress=False)
    seconds = time.perf_counter() - t0
    ev = evaluate(result.model, system, temperature, n_samples=10000, mcmc_chains=8, mcmc_steps=20, seed=1)
    return {"steps": steps, "batch_size": batch, "train_seconds": seconds, "ess": ev["ess"],
            "rel_error": (ev["free_energy"] - exact) / abs(exact), "rel_error_err": ev["free_energy_err"] / abs(exact),
            "z2_symmetric": ev["z2_symmetric"]}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--transformer-batch", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(1)
    steps = args.steps or (300 if args.quick else 1000)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    mam = {k: v for k, v in config["models"]["mam"].items() if k not in ("z2_symmetric", "physics_logits")}
    made = {"kind": "made", "width": 4, "depth": 2}
    ce = write_published_ce(Path(tempfile.mkdtemp()) / "cuau.json")
    cases = {
        "ising_4x4_beta_c": (build_system({"model": "ising", "lattice": "square", "train_size": [4, 4]}), 1 / BETA_C,
                             float(ising_thermo(4, 4, [BETA_C]).free_energy.iloc[0]), ["made", "mam"]),
        "ising_8x8_beta_c": (build_system({"model": "ising", "lattice": "square", "train_size": [8, 8]}), 1 / BETA_C,
                             float(ising_thermo(8, 8, [BETA_C]).free_energy.iloc[0]), ["made"]),
    }
    cuau = build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "ensemble": "canonical",
                         "concentration": 0.5, "train_size": [2, 2, 4]}, ce_file=ce)
    cases["cuau_16_x0.5_700K"] = (cuau, 700.0, exact_enumerated(cuau, 700.0), ["made", "mam"])
    results = {}
    for case, (system, temperature, exact, kinds) in cases.items():
        for kind in kinds:
            base = made if kind == "made" else mam
            n, batch = (steps, args.batch) if kind == "made" else (steps // 5, args.transformer_batch)
            row = {}
            for variant, physics in (("plain", False), ("physics", True)):
                row[variant] = run({**base, "z2_symmetric": "auto", "physics_logits": physics}, system, temperature,
                                   exact, n, batch)
                r = row[variant]
                print(f"{case} {kind} {variant}: rel F error {r['rel_error']:+.2e} +- {r['rel_error_err']:.1e}, "
                      f"ESS {r['ess']:.3f}, {r['train_seconds']:.0f} s", flush=True)
            row["ess_ratio"] = row["physics"]["ess"] / max(row["plain"]["ess"], 1e-300)
            row["abs_error_ratio"] = abs(row["physics"]["rel_error"]) / max(abs(row["plain"]["rel_error"]), 1e-300)
            row["train_seconds_ratio"] = row["physics"]["train_seconds"] / row["plain"]["train_seconds"]
            row["exact_free_energy"] = exact
            results[f"{case}/{kind}"] = row
    headline = []
    for name, row in results.items():
        headline.append({"metric": f"ESS per sample {name}, physics logits vs plain", "value": row["physics"]["ess"],
                         "baseline": row["plain"]["ess"], "ratio": row["ess_ratio"]})
        headline.append({"metric": f"|F_IS - F|/|F| {name}, physics logits vs plain",
                         "value": abs(row["physics"]["rel_error"]), "baseline": abs(row["plain"]["rel_error"]),
                         "ratio": row["abs_error_ratio"]})
    results["headline"] = headline
    benchlib.write_result("physics_logits", {"steps_made": steps, "steps_transformer": steps // 5, "batch": args.batch,
                                             "batch_transformer": args.transformer_batch,
                                             "lr": 1e-3, "anneal": 0.98, "quick": args.quick, "mam": mam, "made": made,
                                             "torch_threads": 1}, results, args.out)


if __name__ == "__main__":
    main()
