"""pyflakes over every Python file we ship: the bench scripts have no tests of their own beyond
--quick smoke runs, and a name shadowed before use (a local `reference` hiding the function of
that name) once broke bench_spin_glass_large.py unseen."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_finds_nothing():
    paths = [str(ROOT / d) for d in ("src", "bench", "tests", "workflow")]
    run = subprocess.run([sys.executable, "-m", "pyflakes", *paths], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
