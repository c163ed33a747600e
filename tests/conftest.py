"""Shared test fixtures."""

import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator, so random test batches are the same on every run."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The test networks and batches are tiny: extra intra-op threads only contend for the CPU
    (on a shared 2-core machine they made some tests 10-20x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def short_gaussian_tempering():
    """Parallel-tempering summaries of eight Gaussian EA 16x16 samples (short_seed0 .. 7), 128
    sweeps from random starts counted from the first: equilibrated at T = 3, not at T <= 1 (the
    energy / link-overlap identity's check fails there)."""
    from lattherm.mcmc.samplers import overlap_tempering
    from lattherm.systems import build_system

    summaries = []
    for seed in range(8):
        block = {"model": "edwards_anderson", "lattice": "square", "couplings": "gaussian", "coupling_seed": seed,
                 "train_size": [16, 16], "mcmc": {"temperatures": [3.0, 1.0, 0.5, 0.25], "chains": 4, "sweeps": 128,
                                                  "burn_in": 0}}
        summaries.append(overlap_tempering(build_system(block, name=f"short_seed{seed}"), seed=seed)[1])
    return summaries


@pytest.fixture()
def workdir(tmp_path):
    """A copy of everything the workflow reads, outside the repository, so that runs never touch it."""
    for name in ["Snakefile", "config.yaml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ["workflow", "config", "envs", "profiles"]:
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path
