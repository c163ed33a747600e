"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator, so random test batches are the same on every run."""
    return torch.Generator().manual_seed(1234)
