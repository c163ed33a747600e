"""Smoke test of bench/bench_ablation.py --quick: it runs, and its figures obey the physics and the
time-to-F rule they claim."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # end-to-end: a subprocess trains 14 models (about 40 s on the shared 2-core CPU)
def test_quick_ablation_runs_and_its_figures_hold(tmp_path):
    out = tmp_path / "ablation.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_ablation.py"), "--quick", "--out", str(out)],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"ising8", "cuau16", "headline"}
    # CuAu's cluster expansion does not take physics logits with patches: those variants are not run
    assert "mam+physics+patch" in results["ising8"]["variants"]
    assert "mam+physics+patch" not in results["cuau16"]["variants"]
    n_ratios = 0
    for name in ("ising8", "cuau16"):
        case = results[name]
        exact = case["exact_free_energy"]
        for row in case["variants"].values():
            # Gibbs: the variational free energy of any model lies above the exact one
            assert row["variational_free_energy"] > exact
            assert math.isclose(row["rel_error"], (row["free_energy"] - exact) / abs(exact))
            assert 0 < row["ess"] <= 1
            trusted = abs(row["sigmas"]) <= 2 and row["ess"] >= 0.01
            assert (row["seconds_to_target"] is not None) == trusted
            if trusted:  # training and the drawn samples are charged; more samples only add
                assert row["seconds_to_target"] >= row["cpu_seconds"]
        for feature, r in case["ratios"].items():
            on, off = case["variants"][r["with"]], case["variants"][r["without"]]
            assert math.isclose(r["ess_ratio"], on["ess"] / off["ess"])
            if r["seconds_to_target_ratio"] is not None:
                assert math.isclose(r["seconds_to_target_ratio"], on["seconds_to_target"] / off["seconds_to_target"])
            n_ratios += 1
    assert len(results["headline"]) == 2 * n_ratios
