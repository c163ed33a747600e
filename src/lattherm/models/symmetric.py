"""Global spin-flip (Z2) symmetrisation of a neural sampler (VAN, Wu-Wang-Zhang 2019).

Zero-field Ising models and spin glasses are invariant under x -> 1 - x, and an autoregressive
sampler trained by reverse KL often learns only one of the two mirror images of a low-energy
state: it then misses half of Z, and F_IS is too high by ln 2 / beta with an error bar that
does not show it. The symmetrised sampler

    q_sym(x) = [q(x) + q(1 - x)] / 2

draws x ~ q (the base's own sampler) and flips it with probability 1/2; q_sym is exactly normalised and is evaluated
with one more ``log_prob`` pass (for the mirror image), so the estimators stay exact for any
Hamiltonian. The canonical constraint survives the flip only at half filling.

A model spec's ``z2_symmetric`` (true, false or ``auto``) says whether the model is trained and
sampled symmetrised; ``auto`` (VAN's choice wherever it applies) is resolved by
:func:`resolve_z2` against the system when training starts, and the checkpoint records the
outcome, so a loaded model is the one that was trained.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from lattherm.models.base import NeuralSampler


class Z2Symmetric(NeuralSampler):
    """The mixture of ``base`` and its global spin flip, with equal weights."""

    def __init__(self, base: NeuralSampler):
        super().__init__()
        if base.n_species != 2:
            raise ValueError(f"the spin flip needs 2 species, the model has {base.n_species}")
        self.base = base
        self.n_sites = base.n_sites

    @property
    def config(self):
        """The base model's config (its ``z2_symmetric`` is true)."""
        return self.base.config

    def _check_n_ones(self, n_ones: int | None) -> None:
        if n_ones is not None and 2 * n_ones != self.n_sites:
            raise ValueError(f"the spin flip maps n_ones = {n_ones} to {self.n_sites - n_ones}: a canonical "
                             "system can be symmetrised only at half filling")

    def log_prob(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None) -> Tensor:
        self._check_n_ones(n_ones)
        both = self.base.log_prob(torch.cat([x, 1 - x]), None if cond is None else torch.cat([cond, cond]), n_ones)
        return torch.logaddexp(both[: len(x)], both[len(x) :]) - math.log(2.0)

    @torch.no_grad()
    def sample(self, n: int, cond: Tensor | None = None, n_ones: int | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        self._check_n_ones(n_ones)
        x, log_q = self.base.sample(n, cond=cond, n_ones=n_ones, generator=generator)
        log_q_mirror = self.base.log_prob(1 - x, cond, n_ones)
        device = generator.device if generator is not None else x.device
        flip = (torch.rand((n, 1), generator=generator, device=device) < 0.5).to(x.device)
        return torch.where(flip, 1 - x, x), torch.logaddexp(log_q, log_q_mirror) - math.log(2.0)

    def on_lattice(self, lattice) -> "Z2Symmetric":
        self.base.on_lattice(lattice)
        self.n_sites = self.base.n_sites
        return self

    def hyperparameters(self) -> dict:
        return {**self.base.hyperparameters(), "z2_symmetric": True}


def spin_flip_symmetric(hamiltonian, n_ones: int | None = None, n_configs: int = 64) -> bool:
    """Whether E(1 - x) = E(x) (to 1e-10 relative) and the ensemble maps to itself (canonical:
    only at half filling), checked on random configurations of a fixed seed (no global RNG)."""
    n = hamiltonian.n_sites
    if n_ones is not None and 2 * n_ones != n:
        return False
    gen = torch.Generator().manual_seed(12345)
    if n_ones is None:
        x = torch.randint(0, 2, (n_configs, n), generator=gen)
    else:
        ranks = torch.argsort(torch.rand(n_configs, n, generator=gen), dim=1)
        x = (ranks < n_ones).long()
    x = x.to(hamiltonian.device)
    e, e_flip = hamiltonian.energy(x), hamiltonian.energy(1 - x)
    scale = e.abs().max().clamp_min(1e-300)
    return bool(((e - e_flip).abs() <= 1e-10 * scale).all())


def resolve_z2(model: NeuralSampler, symmetric: bool) -> NeuralSampler:
    """The model to train: ``model`` itself, or its :class:`Z2Symmetric` mixture when its
    ``z2_symmetric`` is true, or ``auto`` and the system is spin-flip ``symmetric``. The base's
    config then records the outcome (true or false), which the checkpoint saves."""
    if isinstance(model, Z2Symmetric):
        return model
    option = model.config.z2_symmetric
    wrap = symmetric if option == "auto" else bool(option)
    model.config = replace(model.config, z2_symmetric=wrap)
    return Z2Symmetric(model) if wrap else model
