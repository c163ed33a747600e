"""Speed of the refactored models (one sampling loop, one site-indexed KV cache, one mask rule)
against the models before the refactor, and of local (gathered) against global attention.

    python bench/bench_attention.py [--quick] [--repeats 5] [--device cpu|cuda] [--baseline COMMIT]

The baseline is ``src/lattherm/models/{base,made,transformer}.py`` at ``--baseline`` (the last
commit before the refactor), read with ``git show`` and imported as a separate package, so
both run in this process on the same machine. Timed, on square Ising lattices:

- ``sample``: ancestral sampling of a batch (transformer with its KV cache, global attention
  and ``attention_shells: 2``; MADE);
- ``train_step``: forward + backward of the variational loss on a fixed batch, the default
  transformer step (exact two-stream ln q as the score, MaM penalty on a quarter of the rows:
  before, ``model.training_terms``; now ``lattherm.training.training_terms``).

Timings do not depend on the weights, so untrained models are used; an untrained transformer
has uniform conditionals, so old and new must draw identical samples from one seed if they
consume the same random numbers (``same_samples_untrained``). Writes bench/results/attention.json.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import benchlib
from lattherm.lattices import make_lattice
from lattherm.models import build_model
from lattherm.training import training_terms

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "9ad7e9dae7aa77cdd6a53b5dddd58bcfd8402993"  # before issue 10 item 4


def settings(quick: bool) -> dict:
    if quick:
        return {"sides": [10, 20, 32], "sample_batch": 16, "train_batch": 16,
                "transformer": {"d_model": 32, "n_head": 2, "n_layer": 2}, "made": {"hidden": 64, "depth": 2}}
    return {"sides": [10, 20, 32, 48, 64], "sample_batch": 256, "train_batch": 64,
            "transformer": {"d_model": 128, "n_head": 4, "n_layer": 2}, "made": {"hidden": 512, "depth": 2}}


def baseline_models(commit: str):
    """The models package at ``commit``, imported as ``baseline_models``."""
    folder = Path(tempfile.mkdtemp()) / "baseline_models"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in ("base", "made", "transformer"):
        text = subprocess.run(["git", "show", f"{commit}:src/lattherm/models/{name}.py"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        (folder / f"{name}.py").write_text(text.replace("lattherm.models.", "baseline_models."))
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("baseline_models.made"), importlib.import_module("baseline_models.transformer")


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--baseline", default=BASELINE, help="commit of the baseline models")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    old_made, old_transformer = baseline_models(args.baseline)
    rows = []
    for side in cfg["sides"]:
        lattice = make_lattice("square", side)
        n = lattice.n_sites
        runs = {}
        for attention, extra in (("global", {}), ("local", {"attention_shells": 2})):
            torch.manual_seed(0)
            new = build_model({"kind": "transformer", **cfg["transformer"], **extra}, lattice).to(device)
            torch.manual_seed(0)
            old = old_transformer.AnyOrderTransformer(old_transformer.TransformerConfig(**cfg["transformer"], **extra),
                                                      lattice).to(device)
            old.load_state_dict(new.state_dict())
            x = torch.randint(0, 2, (cfg["train_batch"], n), generator=torch.Generator().manual_seed(1)).to(device)
            advantage = torch.randn(cfg["train_batch"], generator=torch.Generator().manual_seed(2)).to(device)

            def step(model=new, terms=lambda m, x: training_terms(m, x)) -> None:
                model.zero_grad(set_to_none=True)
                t = terms(model, x)
                ((advantage * t.log_prob).mean() + t.auxiliary_loss).backward()

            runs[("sample", f"transformer_{attention}", "new")] = lambda m=new: m.sample(cfg["sample_batch"])
            runs[("sample", f"transformer_{attention}", "old")] = lambda m=old: m.sample(cfg["sample_batch"])
            runs[("train_step", f"transformer_{attention}", "new")] = step
            runs[("train_step", f"transformer_{attention}", "old")] = lambda m=old: step(m, lambda m, x: m.training_terms(x))
            seeded = [m.sample(8, generator=torch.Generator(device=device).manual_seed(3))[0] for m in (new, old)]
            same = bool(torch.equal(*seeded))
        torch.manual_seed(0)
        made_new = build_model({"kind": "made", **cfg["made"]}, lattice).to(device)
        made_old = old_made.MADE(old_made.MADEConfig(**cfg["made"]), lattice).to(device)
        runs[("sample", "made", "new")] = lambda: made_new.sample(cfg["sample_batch"])
        runs[("sample", "made", "old")] = lambda: made_old.sample(cfg["sample_batch"])
        for (task, model, version), fn in runs.items():
            seconds, all_seconds = benchlib.median_time(fn, args.repeats, sync)
            rows.append({"task": task, "model": model, "version": version, "n_sites": n, "seconds": seconds,
                         "measured_seconds": all_seconds, "same_samples_untrained": same if "transformer" in model else None})
            print(f"N={n:5d} {task:10s} {model:20s} {version}: {seconds:.4g} s")

    t = {(r["task"], r["model"], r["version"], r["n_sites"]): r["seconds"] for r in rows}
    headline = []
    for n in sorted({r["n_sites"] for r in rows}):
        for task, model in sorted({(r["task"], r["model"]) for r in rows}):
            unit = "samples/s" if task == "sample" else "train steps/s"
            value, base = 1 / t[(task, model, "new", n)], 1 / t[(task, model, "old", n)]
            headline.append({"metric": f"{unit} N={n}, {model}, refactored vs before", "value": value,
                             "baseline": base, "ratio": value / base})
    for n in sorted({r["n_sites"] for r in rows})[-1:]:
        for task in ("sample", "train_step"):
            value, base = 1 / t[(task, "transformer_local", "new", n)], 1 / t[(task, "transformer_global", "new", n)]
            headline.append({"metric": f"{task} rate N={n}, local (gathered) vs global (dense) attention",
                             "value": value, "baseline": base, "ratio": value / base})
    benchlib.write_result("attention", {"quick": args.quick, "repeats": args.repeats, "device": args.device,
                                        "threads": args.threads, "baseline_commit": args.baseline, **cfg,
                                        "statistic": "median", "order": "raster"},
                          {"rows": rows, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
