"""Time and peak memory of one training step: MAM vs the any-order ARM likelihood by N passes.

    python bench/bench_training_step.py [--quick] [--repeats 5] [--device cpu|cuda]

A training step here is the forward and backward pass of the variational loss
mean(A(x) ln q_train(x)) (+ the auxiliary loss) on a fixed batch of configurations x with a
fixed advantage A; sampling the batch is not included. Six ways to get ln q_train:

- ``mam``: the one-pass marginal ln p_theta(x) plus the self-consistency penalty on the whole
  batch (``score: marginal``, ``penalty_fraction: 1``), the MaM paper's training step;
- ``default``: the transformer's default training step in lattherm, the loss of
  :func:`lattherm.training.variational.train` (exact two-stream ln q as the score, the
  penalty on a quarter of the batch; see ``TransformerConfig.score``);
- ``default_local``: the same with local attention (``attention_shells: 2``: each token
  gathers the keys of its neighbours within two shells, O(N) instead of O(N^2));
- ``n_pass``: the MaM paper's baseline for an any-order ARM: ln q(x) = sum_t ln q(x_{o_t} |
  x_{o_<t}) with one ``conditionals`` pass per t (N passes). The advantage is fixed, so the
  loss is a sum over t and each pass is back-propagated at once (gradients accumulate; memory
  of one pass, the lean way to run this baseline). In --quick mode only K evenly spaced passes
  are timed and the time is scaled by N / K (every pass processes all N tokens, so passes cost
  the same whatever t is); the JSON says so (``n_pass_timed``, ``extrapolated``);
- ``two_stream``: the exact ln q(x) of the same transformer in one 2N-token pass (``log_prob``);
- ``made``: the fixed-order MADE baseline's exact ln q(x) (one masked-MLP pass).

Each configuration runs in a fresh subprocess: peak memory on CPU is ru_maxrss after the
step minus ru_maxrss after imports (so it includes the model, the batch and the step); on a
GPU it is ``torch.cuda.max_memory_allocated``. Square Ising lattices 10x10, 20x20, 32x32.
Writes bench/results/training_step.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import benchlib

SIZES = (10, 20, 32)
# the MaM paper's step: marginal score, penalty on every row (other methods use the defaults)
MODEL_OVERRIDES = {"mam": {"score": "marginal", "penalty_fraction": 1.0}, "default_local": {"attention_shells": 2}}
METHODS = ("mam", "default", "default_local", "n_pass", "two_stream", "made")


def settings(quick: bool) -> dict:
    """Model and batch sizes; --quick fits the 2-core CPU in a few minutes."""
    if quick:
        # one MAM step of this small transformer at N = 1024 takes ~15 s on 2 CPU cores, so the
        # largest size is timed once (after the warm-up step)
        return {"batch": 4, "transformer": {"d_model": 32, "n_head": 2, "n_layer": 2},
                "made": {"hidden": 64, "depth": 2}, "n_pass_max_timed": 8, "single_repeat_from_n": 1024}
    return {"batch": 64, "transformer": {"d_model": 128, "n_head": 4, "n_layer": 2},
            "made": {"hidden": 512, "depth": 2}, "n_pass_max_timed": None, "single_repeat_from_n": None}


def worker(job: dict) -> dict:
    """One (method, size) in this process: peak memory of one step, then the median step time."""
    import torch

    torch.set_num_threads(job["threads"])
    from lattherm.models import build_model
    from lattherm.systems import build_system

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    device = torch.device(job["device"])
    cuda = device.type == "cuda"
    system = build_system({"model": "ising", "lattice": "square", "train_size": [job["L"], job["L"]]})
    lattice, n = system.lattice, system.lattice.n_sites
    kind = "made" if job["method"] == "made" else "transformer"
    torch.manual_seed(0)
    model = build_model({"kind": kind, **job["model"]}, lattice).to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (job["batch"], n), generator=gen).to(device)
    energy = system.hamiltonian.to(device).energy(x)
    advantage = (energy - energy.mean()).float()
    order = torch.randperm(n, generator=gen).to(device)
    rank = torch.argsort(order)

    # the N-pass baseline: which prefix lengths t are timed (all of them unless capped)
    k_max = job["n_pass_max_timed"]
    timed = list(range(n)) if k_max is None or k_max >= n else torch.linspace(0, n - 1, k_max).round().long().tolist()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        if job["method"] in ("mam", "default", "default_local"):
            terms = model.training_terms(x)
            ((advantage * terms.log_prob).mean() + terms.auxiliary_loss).backward()
        elif job["method"] == "two_stream":
            (advantage * model.log_prob(x, order=order)).mean().backward()
        elif job["method"] == "made":
            (advantage * model.log_prob(x)).mean().backward()
        else:
            for t in timed:
                site = int(order[t])
                logq = model.conditionals(x, (rank < t).expand_as(x), order=order)
                term = logq[:, site].gather(1, x[:, site : site + 1])[:, 0]
                (advantage * term).mean().backward()

    sync = torch.cuda.synchronize if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    step()
    if cuda:
        torch.cuda.synchronize()
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    seconds, all_seconds = benchlib.median_time(step, job["repeats"], sync)
    scale = n / len(timed) if job["method"] == "n_pass" else 1.0
    return {"method": job["method"], "n_sites": n, "L": job["L"], "batch": job["batch"],
            "seconds_per_step": seconds * scale, "measured_seconds": all_seconds,
            "n_pass_timed": len(timed) if job["method"] == "n_pass" else None,
            "extrapolated": job["method"] == "n_pass" and len(timed) < n,
            "peak_memory_mib": peak_mib, "memory_kind": "cuda_max_allocated" if cuda else "cpu_maxrss_delta",
            "parameters": sum(p.numel() for p in model.parameters())}


def run_job(job: dict) -> dict:
    """Run one configuration in a fresh interpreter so that its peak RSS is its own."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {job['method']} L={job['L']} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds_including_startup"] = time.perf_counter() - start
    return result


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one JSON job per subprocess
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    import torch

    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    rows = []
    for L in SIZES:
        for method in METHODS:
            single = cfg["single_repeat_from_n"] is not None and L * L >= cfg["single_repeat_from_n"] and method != "made"
            job = {"method": method, "L": L, "batch": cfg["batch"], "device": args.device, "threads": args.threads,
                   "repeats": 1 if single else args.repeats,
                   "model": MODEL_OVERRIDES.get(method, {}) | (cfg["made"] if method == "made" else cfg["transformer"]),
                   "n_pass_max_timed": cfg["n_pass_max_timed"]}
            r = run_job(job)
            rows.append(r)
            note = f" (from {r['n_pass_timed']} passes, scaled)" if r["extrapolated"] else ""
            print(f"N={r['n_sites']:5d} {method:10s} {r['seconds_per_step']:.4g} s/step{note}, "
                  f"peak {r['peak_memory_mib']:.1f} MiB")
    headline = []
    for L in SIZES:
        by = {r["method"]: r for r in rows if r["L"] == L}
        n, mam = by["mam"]["n_sites"], by["mam"]
        for base in ("n_pass", "default", "default_local", "two_stream", "made"):
            rate, base_rate = 1 / mam["seconds_per_step"], 1 / by[base]["seconds_per_step"]
            extra = ", extrapolated" if by[base]["extrapolated"] else ""
            headline.append({"metric": f"train steps/s N={n}, MAM vs {base}{extra}", "value": rate,
                             "baseline": base_rate, "ratio": rate / base_rate})
        headline.append({"metric": f"peak MiB N={n}, MAM vs n_pass", "value": mam["peak_memory_mib"],
                         "baseline": by["n_pass"]["peak_memory_mib"],
                         "ratio": mam["peak_memory_mib"] / max(by["n_pass"]["peak_memory_mib"], 1e-9)})
    benchlib.write_result("training_step", {"quick": args.quick, "repeats": args.repeats, "device": args.device,
                                            "threads": args.threads, "sizes": [L * L for L in SIZES], **cfg,
                                            "statistic": "median", "step": "forward + backward of the loss on a fixed batch"},
                          {"rows": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
