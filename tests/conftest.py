"""Shared test fixtures."""

import pytest
import torch


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
