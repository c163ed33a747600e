"""Compare two runs of the workflow (say, one local and one through SLURM) up to timing.

    python .ci/compare_runs.py A/results B/results            # bit for bit (the default, --rtol 0)
    python .ci/compare_runs.py A/results/neural/x B/results/neural/x --rtol 1e-6

Both sides must hold the same files. Tables (csv, parquet), JSON files and training checkpoints
(.pt: weights, optimizer state, step, RNG states, settings, log) are compared value by value:
strings, integers and booleans exactly; floating-point numbers bit for bit with ``--rtol 0``
(NaN equals NaN), else to ``rtol`` relative to the largest magnitude of their column or tensor (so
a number near zero in a column of large ones is not held to a relative precision it never had).
.ci/slurm-local.sh compares bit for bit: its SLURM jobs run on the threads the rules declare, as
the local run's do. (On more threads torch sums in another order: the transformer's numbers then
differ by ~1e-7 relative, and a sampled configuration can flip where a draw falls that close to a
threshold, so no small tolerance would be safe either.) Any other file is compared byte for byte.

Left out, and why:
  wall_time               (training logs, summary.json, checkpoint logs) seconds since a training
                          run started: a timing, different in any two runs
  trial_steps_per_second  (MCMC tables) throughput: a timing too
  date_created            (ce/*.json, the metadata icet writes with a cluster expansion) the time
                          of the fit. (Its hostname and username are compared: equal on a
                          one-node cluster, they would differ between nodes.)
  report/runtimes.csv     every job's runtime (the report's provenance): timings
  *.png, *.pdf            figures, drawn from the tables compared here (a PDF also records its
                          creation date; .ci/slurm-local.sh runs figure_snapshots, which samples
                          the trained models afresh, on 2 threads to check that threads reach
                          SLURM)
Logs and benchmark files are not under results/ and are not compared.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

TIMING = {"wall_time", "trial_steps_per_second", "date_created"}
TIMING_FILES = {Path("report/runtimes.csv")}
FIGURES = {".png", ".pdf"}


def load(path: Path):
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=False)
    return path.read_bytes()


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    if rtol == 0:
        return np.array_equal(a, b, equal_nan=True)
    scale = np.nanmax(np.abs(np.concatenate([a.ravel(), b.ravel()])), initial=0.0)
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True))


def differences(a, b, where: str, rtol: float) -> list[str]:
    """Where ``a`` and ``b`` differ (empty if they agree)."""
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame):
        a, b = a.drop(columns=[c for c in a if c in TIMING]), b.drop(columns=[c for c in b if c in TIMING])
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            return [f"{where}: columns {list(a.columns)} x {len(a)} rows vs {list(b.columns)} x {len(b)} rows"]
        return [d for c in a.columns for d in differences(a[c].to_numpy(), b[c].to_numpy(), f"{where}[{c}]", rtol)]
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [k for k in a if k not in TIMING]
        if sorted(map(str, keys)) != sorted(str(k) for k in b if k not in TIMING):
            return [f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"]
        return [d for k in keys for d in differences(a[k], b[k], f"{where}.{k}", rtol)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        if a and all(isinstance(v, dict) for v in (*a, *b)):  # a log: compare it as a table
            return differences(pd.DataFrame(list(a)), pd.DataFrame(list(b)), where, rtol)
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]", rtol)]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return [f"{where}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"]
        a, b = a.detach().cpu().numpy(), b.detach().cpu().numpy()
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape != b.shape:
            return [f"{where}: shape {a.shape} vs {b.shape}"]
        if a.dtype.kind == "f" and b.dtype.kind == "f":
            if _close(a.astype(np.float64), b.astype(np.float64), rtol):
                return []
            worst = np.nanmax(np.abs(a - b))
            return [f"{where}: floats differ by up to {worst:.3g} (rtol {rtol:g})"]
        same = a.dtype == b.dtype and (np.array_equal(a, b) if a.dtype.kind not in "fc" else
                                       np.array_equal(a, b, equal_nan=True))
        if not same and a.dtype == object and b.dtype == object:  # mixed columns: element by element
            return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]", rtol)]
        return [] if same else [f"{where}: {a.dtype} values differ"]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
                and not isinstance(b, bool):
            if (math.isnan(a) and math.isnan(b)) or _close(np.array([a]), np.array([b]), rtol):
                return []
        return [f"{where}: {a!r} vs {b!r}"]
    return [] if type(a) is type(b) and a == b else [f"{where}: {a!r} vs {b!r}"]


def compare(a: Path, b: Path, rtol: float) -> list[str]:
    if a.is_file() or b.is_file():
        return differences(load(a), load(b), a.name, rtol)
    files = {side: {p.relative_to(root) for p in root.rglob("*") if p.is_file()} for side, root in (("a", a), ("b", b))}
    found = [f"only in {a}: {p}" for p in sorted(files["a"] - files["b"])]
    found += [f"only in {b}: {p}" for p in sorted(files["b"] - files["a"])]
    for rel in sorted(files["a"] & files["b"]):
        if rel.suffix not in FIGURES and rel not in TIMING_FILES:
            found += differences(load(a / rel), load(b / rel), str(rel), rtol)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--rtol", type=float, default=0.0)
    args = parser.parse_args()
    found = compare(args.a, args.b, args.rtol)
    for line in found:
        print(f"differs: {line}")
    kind = "bit for bit" if args.rtol == 0 else f"to rtol {args.rtol:g}"
    print(f"{args.a} and {args.b}: {'equal ' + kind if not found else f'{len(found)} differences'} "
          f"(timing columns {sorted(TIMING)}, {', '.join(map(str, TIMING_FILES))} and figures left out)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
