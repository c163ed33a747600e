"""Full passes of a transformer with local attention: one dense masked attention against gathering
each token's local keys, by cell size (where ``lattherm.models.transformer.DENSE_RATIO`` belongs).

    python bench/bench_dense_local.py [--quick] [--repeats 5] [--device cpu|cuda] [--threads 1]

Timed: the default training step's forward and backward (:func:`lattherm.training.training_terms`,
its exact two-stream ln q and MaM penalty) on a fixed batch of square-Ising configurations, for
bench_time_to_f's transformer with physics logits and 2x2 patches over 2 and 7 attention shells
and for the one-site-per-token transformer over 2 shells (cells of at most 1024 tokens), with
``DENSE_RATIO`` set huge (dense) and to 0 (gathered). Both give the same numbers
(tests/models/test_transformer.py; ``max_abs_log_prob_difference`` here). Writes
bench/results/dense_local.json; the headline: train steps/s dense vs gathered per cell, and
M / C, the positions per local key, on which the choice depends.
"""

from __future__ import annotations

import torch

import benchlib
from bench_time_to_f import TRANSFORMER_PATCH
from lattherm.models import build_model, transformer
from lattherm.models.physics import attach_physics
from lattherm.systems import build_system
from lattherm.training import training_terms

MODELS = {
    "patch2x2_shells2": TRANSFORMER_PATCH,
    "patch2x2_shells7": {**TRANSFORMER_PATCH, "attention_shells": 7},
    "site_shells2": {"kind": "transformer", "d_model": 32, "n_layer": 1, "n_head": 2, "attention_shells": 2,
                     "physics_logits": True},
}
MAX_DENSE_TOKENS = 1024  # beyond, the dense scores of a batch take gigabytes (and lose: see the results)


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sides, batch = ([8, 16], 16) if args.quick else ([16, 24, 32, 48], args.batch)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    rows = []
    for side in sides:
        system = build_system({"model": "ising", "lattice": "square", "train_size": [side, side]})
        for label, spec in MODELS.items():
            torch.manual_seed(0)
            model = attach_physics(build_model({**spec, "z2_symmetric": False}, system.lattice), system.hamiltonian,
                                   beta=0.44).to(device)
            if model.n_tokens > MAX_DENSE_TOKENS:
                continue
            x = torch.randint(0, 2, (batch, system.lattice.n_sites), generator=torch.Generator().manual_seed(1)).to(device)
            advantage = torch.randn(batch, generator=torch.Generator().manual_seed(2)).to(device)

            def step() -> torch.Tensor:
                model.zero_grad(set_to_none=True)
                t = training_terms(model, x)
                ((advantage * t.log_prob).mean() + t.auxiliary_loss).backward()
                return t.log_prob.detach()

            log_prob, seconds = {}, {}
            for mode, ratio in (("dense", 1 << 30), ("gathered", 0)):
                transformer.DENSE_RATIO = ratio
                log_prob[mode] = step()
                seconds[mode], measured = benchlib.median_time(step, args.repeats, sync)
                rows.append({"model": label, "side": side, "n_tokens": model.n_tokens,
                             "local_keys": model.key_sites.shape[1], "attention": mode, "seconds": seconds[mode],
                             "measured_seconds": measured})
            difference = float((log_prob["dense"] - log_prob["gathered"]).abs().max())
            for row in rows[-2:]:
                row["max_abs_log_prob_difference"] = difference
            print(f"{side}x{side} {label:18s} tokens {model.n_tokens:5d}: dense {seconds['dense']:.3f} s, "
                  f"gathered {seconds['gathered']:.3f} s, ratio {seconds['gathered'] / seconds['dense']:.2f}", flush=True)
    headline = []
    for dense, gathered in zip(rows[::2], rows[1::2]):
        headline.append({"metric": f"train steps/s {dense['side']}x{dense['side']} {dense['model']} "
                                   f"({dense['n_tokens']} tokens, {dense['local_keys']} local keys: M / C "
                                   f"{dense['n_tokens'] / dense['local_keys']:.1f}), dense vs gathered",
                         "value": 1 / dense["seconds"], "baseline": 1 / gathered["seconds"],
                         "ratio": gathered["seconds"] / dense["seconds"]})
    benchlib.write_result("dense_local", {"quick": args.quick, "repeats": args.repeats, "device": args.device,
                                          "threads": args.threads, "batch": batch, "models": MODELS,
                                          "statistic": "median", "clock": "wall"},
                          {"rows": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
