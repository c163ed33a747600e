"""The contract every neural sampler satisfies, so that training, estimators and transfer are
written once for MADE and for the any-order Transformer alike.

- ``sample`` draws configurations with their exact, normalised ln q.
- ``log_prob`` recomputes that exact ln q for given configurations.
- ``training_terms`` gives what enters the variational loss: the differentiable ln q_train(x)
  (``log_prob`` by default; a marginalization model returns its one-pass marginal instead), an
  auxiliary loss added to it (the MAM self-consistency penalty; zero by default) and the
  consistency error to log, all from one set of forward passes.

``cond`` is an optional (B, n_cond) float tensor of conditioning variables (e.g. beta, or
beta and dmu), so one model can serve a whole temperature scan. ``n_ones`` (canonical
ensemble) fixes how many sites carry species 1 in every sample; the conditionals are then
renormalised over the choices that can still reach that count (see :func:`canonical_mask`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class TrainingTerms:
    """What one training step needs from a model, for a batch x of its own samples."""

    log_prob: Tensor  # ln q_train(x), (B,), differentiable: the score of the variational loss
    auxiliary_loss: Tensor  # scalar added to the loss
    consistency_error: float  # RMS self-consistency residual; NaN for models without a marginal network


class NeuralSampler(nn.Module, ABC):
    n_sites: int
    n_species: int = 2

    @abstractmethod
    def sample(
        self,
        n: int,
        cond: Tensor | None = None,
        n_ones: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return ``x`` (n, N) int64 and exact ``log_q`` (n,) float64."""

    @abstractmethod
    def log_prob(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None) -> Tensor:
        """Exact normalised ln q(x), shape (B,)."""

    def training_terms(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                       generator: torch.Generator | None = None) -> TrainingTerms:
        """The exact ln q, no auxiliary loss; ``generator`` drives any randomness of the terms."""
        return TrainingTerms(self.log_prob(x, cond=cond, n_ones=n_ones), x.new_zeros((), dtype=torch.float32), math.nan)

    def check_cond(self, cond: Tensor | None, batch: int, n_cond: int, like: Tensor) -> Tensor | None:
        """Validate conditioning variables against the model's ``n_cond`` (0: unconditional)
        and move them to the dtype and device of the network tensor ``like``."""
        if n_cond == 0:
            if cond is not None:
                raise ValueError(f"this {type(self).__name__} is unconditional (n_cond = 0) but cond was given")
            return None
        if cond is None or cond.shape != (batch, n_cond):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"cond must have shape ({batch}, {n_cond}), got {got}")
        return cond.to(like)

    @abstractmethod
    def hyperparameters(self) -> dict:
        """Plain-Python constructor arguments, saved in checkpoints to rebuild the model."""


def canonical_mask(n_ones_so_far: Tensor, n_remaining: int, n_ones: int) -> Tensor:
    """Which species (0 or 1) may still be chosen at the next site, shape (B, 2), bool.

    ``n_ones_so_far`` counts species-1 sites already placed; ``n_remaining`` counts the sites
    not yet placed, the current one included. Species 1 is allowed while ones are still
    needed; species 0 is allowed while enough sites remain to place the missing ones.
    """
    needed = n_ones - n_ones_so_far
    allow_one = needed > 0
    allow_zero = needed < n_remaining
    return torch.stack([allow_zero, allow_one], dim=-1)
