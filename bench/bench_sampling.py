"""Sampling throughput (samples/s) of the any-order transformer with and without its KV cache.

    python bench/bench_sampling.py [--quick] [--repeats 5] [--device cpu|cuda]

Ancestral sampling of an (untrained) transformer on square lattices, raster order:
``sample(n, use_cache=True)`` (one incremental pass over 2 new tokens per site, appending to
the KV cache) against ``use_cache=False`` (a full N-token pass per site), both drawing the
same samples. The cached sampler with local attention (``attention_shells: 2``, each token
gathers its own neighbours' keys) is timed too. MADE's ancestral sampler (N masked-MLP passes)
is timed for reference. Sampling
time does not depend on the weights, so untrained models give the trained models' speed.
The uncached sampler costs O(N^2) tokens per sample; it is timed only up to ``uncached_max_n``
sites (listed in the JSON), so the cached/uncached ratio exists up to that size.
Writes bench/results/sampling.json.
"""

from __future__ import annotations

import torch

import benchlib
from lattherm.lattices import make_lattice
from lattherm.models import build_model


def settings(quick: bool) -> dict:
    if quick:
        return {"sides": [10, 16, 24, 32], "batch": 16, "uncached_max_n": 256, "uncached_repeats": 1,
                "transformer": {"d_model": 32, "n_head": 2, "n_layer": 2}, "made": {"hidden": 64, "depth": 2}}
    return {"sides": [10, 20, 32, 48, 64], "batch": 256, "uncached_max_n": 1024, "uncached_repeats": None,
            "transformer": {"d_model": 128, "n_head": 4, "n_layer": 2}, "made": {"hidden": 512, "depth": 2}}


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    rows = []
    for side in cfg["sides"]:
        lattice = make_lattice("square", side)
        n = lattice.n_sites
        torch.manual_seed(0)
        transformer = build_model({"kind": "transformer", **cfg["transformer"]}, lattice).to(device)
        local = build_model({"kind": "transformer", "attention_shells": 2, **cfg["transformer"]}, lattice).to(device)
        made = build_model({"kind": "made", **cfg["made"]}, lattice).to(device)
        runs = {"transformer_cached": (lambda: transformer.sample(cfg["batch"], use_cache=True), args.repeats),
                "transformer_cached_local": (lambda: local.sample(cfg["batch"]), args.repeats),
                "made": (lambda: made.sample(cfg["batch"]), args.repeats)}
        if n <= cfg["uncached_max_n"]:
            runs["transformer_uncached"] = (lambda: transformer.sample(cfg["batch"], use_cache=False),
                                            cfg["uncached_repeats"] or args.repeats)
        for name, (fn, repeats) in runs.items():
            seconds, all_seconds = benchlib.median_time(fn, repeats, sync)
            rows.append({"sampler": name, "n_sites": n, "batch": cfg["batch"], "seconds": seconds,
                         "measured_seconds": all_seconds, "samples_per_second": cfg["batch"] / seconds})
            print(f"N={n:5d} {name:22s} {cfg['batch'] / seconds:10.1f} samples/s")
        if "transformer_uncached" in runs:
            # the two samplers must agree: same generator seed, same samples
            x1, lq1 = transformer.sample(4, generator=torch.Generator(device=device).manual_seed(3), use_cache=True)
            x2, lq2 = transformer.sample(4, generator=torch.Generator(device=device).manual_seed(3), use_cache=False)
            rows[-1]["same_samples_as_cached"] = bool(torch.equal(x1, x2))
            rows[-1]["max_abs_log_q_diff"] = float((lq1 - lq2).abs().max())

    rate = {(r["sampler"], r["n_sites"]): r["samples_per_second"] for r in rows}
    headline = []
    for n in sorted({r["n_sites"] for r in rows}):
        if ("transformer_uncached", n) in rate:
            value, base = rate[("transformer_cached", n)], rate[("transformer_uncached", n)]
            headline.append({"metric": f"samples/s N={n}, KV cache vs no cache", "value": value,
                             "baseline": base, "ratio": value / base})
    for n in sorted({r["n_sites"] for r in rows})[-1:]:
        value, base = rate[("transformer_cached", n)], rate[("made", n)]
        headline.append({"metric": f"samples/s N={n}, transformer (cached) vs MADE", "value": value,
                         "baseline": base, "ratio": value / base})
        value, base = rate[("transformer_cached_local", n)], rate[("transformer_cached", n)]
        headline.append({"metric": f"samples/s N={n}, transformer (cached) local vs global attention",
                         "value": value, "baseline": base, "ratio": value / base})
    benchlib.write_result("sampling", {"quick": args.quick, "repeats": args.repeats, "device": args.device,
                                       "threads": args.threads, **cfg, "statistic": "median", "order": "raster"},
                          {"rows": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
