"""Shared plumbing for bench/ scripts: machine description, repeated timing, result files.

Every script compares against its baseline in the same run and writes
``bench/results/<name>.json`` with machine, date, versions, parameters, raw figures and ratios.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lattherm.io import write_json  # noqa: E402


def machine_info() -> dict:
    import numpy
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # the CPU may be shared: a load above cpu_count means contended timings
        "load_average_1_5_15min": list(os.getloadavg()),
    }
    try:
        import icet

        info["icet"] = icet.__version__
    except ImportError:
        pass
    return info


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="CPU-sized run that finishes in minutes")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats (median is reported)")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default bench/results/<name>.json)")
    return p


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] | None = None) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def write_result(name: str, parameters: dict, results: dict, out: Path | None = None) -> Path:
    path = out or RESULTS_DIR / f"{name}.json"
    write_json(path, {
        "benchmark": name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": parameters,
        "results": results,
    })
    print(f"wrote {path}")
    return path
