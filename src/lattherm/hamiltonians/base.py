"""The Hamiltonian contract shared by exact references, MCMC samplers and neural samplers.

Every Hamiltonian is a ``torch.nn.Module`` mapping a batch of configurations ``x`` of shape
(B, N) with species indices in {0, 1} (any integer, bool or float dtype) to total energies of
shape (B,) in float64. Buffers move with ``.to(device)``, so the same object runs on CPU or GPU.

Energy changes of local moves (used by MCMC) have exact defaults by full recomputation;
subclasses override them with O(neighbours) formulas, and tests check both agree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Hamiltonian(nn.Module, ABC):
    """Abstract lattice Hamiltonian over N sites with binary species."""

    n_species: int = 2

    def __init__(self, n_sites: int):
        super().__init__()
        if n_sites < 1:
            raise ValueError(f"a Hamiltonian needs at least one site, got {n_sites}")
        self.n_sites = int(n_sites)

    @abstractmethod
    def energy(self, x: Tensor) -> Tensor:
        """Total energies, (B, N) -> (B,) float64."""

    @abstractmethod
    def identity(self) -> dict:
        """What defines this Hamiltonian, as plain values (recorded in checkpoints, so that a model
        is not silently used on another Hamiltonian): ``model`` and its parameters. A field
        named ``seed`` or ``n_sites`` describes one random draw on one cell (spin glasses)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.energy(x)

    @property
    def device(self) -> torch.device:
        for t in list(self.buffers()) + list(self.parameters()):
            return t.device
        return torch.device("cpu")

    def check_input(self, x: Tensor) -> Tensor:
        """Validate the shape and return float64 spins s = 2x - 1 of shape (B, N)."""
        if x.dim() != 2 or x.shape[1] != self.n_sites:
            raise ValueError(f"expected configurations of shape (B, {self.n_sites}), got {tuple(x.shape)}")
        return 2.0 * x.to(torch.float64) - 1.0

    def flip_delta(self, x: Tensor, sites: Tensor) -> Tensor:
        """E(x with x[b, sites[b]] flipped) - E(x), shape (B,)."""
        y = x.clone()
        rows = torch.arange(x.shape[0], device=x.device)
        y[rows, sites] = 1 - y[rows, sites]
        return self.energy(y) - self.energy(x)

    def swap_delta(self, x: Tensor, i: Tensor, j: Tensor) -> Tensor:
        """E(x with sites i[b] and j[b] exchanged) - E(x), shape (B,)."""
        y = x.clone()
        rows = torch.arange(x.shape[0], device=x.device)
        y[rows, i], y[rows, j] = x[rows, j], x[rows, i]
        return self.energy(y) - self.energy(x)


class SemiGrand(Hamiltonian):
    """Semi-grand-canonical energy E(x) - dmu * sum_i s_i with s_i = 2 x_i - 1.

    With CuAu (x_i = 1 for Au) a positive ``dmu`` favours Au, matching the published model's
    convention E(sigma) - mu * sum_i (2 x_i - 1).
    """

    def __init__(self, base: Hamiltonian, dmu: float):
        super().__init__(base.n_sites)
        self.base = base
        self.dmu = float(dmu)

    def identity(self) -> dict:
        return {**self.base.identity(), "dmu": self.dmu}

    def energy(self, x: Tensor) -> Tensor:
        s = self.check_input(x)
        return self.base.energy(x) - self.dmu * s.sum(dim=1)

    def flip_delta(self, x: Tensor, sites: Tensor) -> Tensor:
        rows = torch.arange(x.shape[0], device=x.device)
        s_old = 2.0 * x[rows, sites].to(torch.float64) - 1.0
        # flipping s -> -s changes -dmu * sum s by +2 dmu s_old
        return self.base.flip_delta(x, sites) + 2.0 * self.dmu * s_old

    def swap_delta(self, x: Tensor, i: Tensor, j: Tensor) -> Tensor:
        return self.base.swap_delta(x, i, j)
