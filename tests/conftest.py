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


@pytest.fixture()
def workdir(tmp_path):
    """A copy of everything the workflow reads, outside the repository, so that runs never touch it."""
    for name in ["Snakefile", "config.yaml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ["workflow", "config", "envs", "profiles"]:
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path
