"""The contract every neural sampler satisfies, so that sampling, training, estimators and
transfer are written once for MADE, the any-order Transformer and the symmetrising wrappers.

- ``sample`` draws configurations with their exact, normalised ln q.
- ``log_prob`` recomputes that exact ln q for given configurations.
- ``on_lattice`` moves the model to another supercell (or refuses to).

An autoregressive sampler (:class:`Autoregressive`) provides, besides its hyperparameters,
only its conditionals: all of them at once (``log_conditionals``, from which ``log_prob``
follows) and the next site's during sampling (``sampling_state`` / ``next_logits``, with an
optional cache); the one ancestral sampling loop (:func:`lattherm.models.sampling.ancestral_sample`)
does the rest. A step places one token: a site (its species), or for a model with patches
(``patches`` (M, k) sites, ``patch_values`` (V, k) species of each token value) k sites at once.

``cond`` is an optional (B, n_cond) float tensor of conditioning variables (e.g. beta, or
beta and dmu), so one model can serve a whole temperature scan. ``n_ones`` (canonical
ensemble) fixes how many sites carry species 1 in every sample; the conditionals are then
renormalised over the choices that can still reach that count (see :func:`canonical_mask`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class NeuralSampler(nn.Module, ABC):
    n_sites: int
    n_species: int = 2
    has_marginal: bool = False  # a marginalization network (log_marginal) for the MaM penalty

    @abstractmethod
    def sample(self, n: int, cond: Tensor | None = None, n_ones: int | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Return ``x`` (n, N) int64 and exact ``log_q`` (n,) float64."""

    @abstractmethod
    def log_prob(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None) -> Tensor:
        """Exact normalised ln q(x), shape (B,) float64; -inf where x breaks ``n_ones``."""

    @abstractmethod
    def on_lattice(self, lattice) -> "NeuralSampler":
        """This model on another supercell (same weights), or a ValueError."""

    @abstractmethod
    def hyperparameters(self) -> dict:
        """Plain-Python constructor arguments, saved in checkpoints to rebuild the model."""

    # -- input checks shared by the models -------------------------------------------------
    def check_x(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_sites:
            raise ValueError(f"expected x of shape (B, {self.n_sites}), got {tuple(x.shape)}")
        if x.is_floating_point() or x.dtype == torch.bool:
            raise ValueError(f"x must hold integer species indices, got dtype {x.dtype}")
        if x.numel() and (x.min() < 0 or x.max() >= self.n_species):
            raise ValueError(f"species indices must lie in [0, {self.n_species}), got {x.min().item()}..{x.max().item()}")
        return x.long()

    def check_n_ones(self, n_ones: int | None) -> None:
        if n_ones is None:
            return
        if self.n_species != 2:
            raise ValueError(f"the canonical constraint n_ones needs 2 species, this model has {self.n_species}")
        if not 0 <= n_ones <= self.n_sites:
            raise ValueError(f"n_ones must lie in [0, {self.n_sites}], got {n_ones}")

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


@dataclass
class SamplingState:
    """What the sampling loop carries between steps: the token order (1 or n, M), its inverse
    ``rank``, the checked ``cond`` and the model's cache (None: recompute each step)."""

    order: Tensor
    rank: Tensor
    cond: Tensor | None
    cache: object | None


class Autoregressive(NeuralSampler):
    """q(x) = prod_t q(x_{o_t} | x_{o_<t}) along an order o of the tokens; sampled by the one loop.
    A token is one site (the default) or a patch of k sites with vocabulary K^k."""

    @property
    def patches(self) -> Tensor:
        """The sites of each token, (M, k) int64; one site per token by default."""
        return torch.arange(self.n_sites)[:, None]

    @property
    def patch_values(self) -> Tensor:
        """The species each token value puts on its patch's sites, (V, k) int64."""
        return torch.arange(self.n_species)[:, None]

    def tokens(self, x: Tensor) -> Tensor:
        """The token value of every patch of x (B, N), (B, M) int64."""
        return x

    @abstractmethod
    def log_conditionals(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                         order: Tensor | None = None) -> Tensor:
        """ln q(token i = v | the tokens before i in the order) for every token i, (B, M, V) float64."""

    @abstractmethod
    def sampling_state(self, n: int, cond: Tensor | None, order: Tensor | None, use_cache: bool) -> SamplingState:
        """Start sampling ``n`` configurations along ``order`` (the model's default if None)."""

    @abstractmethod
    def next_logits(self, x: Tensor, t: int, state: SamplingState) -> Tensor:
        """Logits (n, V) of token ``state.order[:, t]`` given the tokens placed before it in ``x``."""

    def log_prob(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                 order: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        return self.log_conditionals(x, cond, n_ones, order).gather(-1, self.tokens(x)[..., None])[..., 0].sum(1)

    def sample(self, n: int, cond: Tensor | None = None, n_ones: int | None = None,
               generator: torch.Generator | None = None, order: Tensor | None = None,
               use_cache: bool = True) -> tuple[Tensor, Tensor]:
        from lattherm.models.sampling import ancestral_sample

        return ancestral_sample(self, n, cond, n_ones, generator, order, use_cache)


SYMMETRY_OPTIONS = (False, True, "auto")


def check_symmetry_options(config) -> None:
    """A model's ``z2_symmetric`` and ``lattice_symmetric``: true, false or ``auto`` (resolved
    against the system when training starts: :func:`lattherm.models.symmetric.resolve_symmetries`)."""
    for name in ("z2_symmetric", "lattice_symmetric"):
        value = getattr(config, name)
        if not any(value is option or (isinstance(option, str) and value == option) for option in SYMMETRY_OPTIONS):
            raise ValueError(f"{name} must be true, false or 'auto', got {value!r}")


def canonical_mask(n_ones_so_far: Tensor, n_remaining: Tensor | int, n_ones: int,
                   value_ones: Tensor | None = None) -> Tensor:
    """Which token values may still be chosen at the next step, shape (..., V), bool.

    ``n_ones_so_far`` counts species-1 sites already placed; ``n_remaining`` counts the sites
    not yet placed, the current token's included. ``value_ones`` (V,): the species-1 sites each
    value places (None: one site, values 0 and 1), k = the token's sites = the largest count.
    A value is allowed if it places no more ones than are still needed and leaves no more
    needed than the sites after it can hold. (For one site: species 1 while ones are still
    needed, species 0 while enough sites remain.)
    """
    needed = torch.as_tensor(n_ones - n_ones_so_far)[..., None]
    if value_ones is None:
        value_ones = torch.arange(2, device=needed.device)
    after = needed - value_ones.to(needed.device)
    k = int(value_ones.max())
    return (after >= 0) & (after <= torch.as_tensor(n_remaining, device=needed.device)[..., None] - k)


def log_softmax_canonical(logits: Tensor, ones_before: Tensor | None, remaining: Tensor | int,
                          n_ones: int | None, value_ones: Tensor | None = None) -> Tensor:
    """ln q over the token values (last axis) in float64, renormalised over the values that
    can still reach ``n_ones`` (None: unconstrained; ``value_ones``: see :func:`canonical_mask`).
    A state that cannot reach ``n_ones`` whatever comes next gives -inf to every value."""
    logits = logits.to(torch.float64)
    if n_ones is not None:
        allowed = canonical_mask(ones_before, remaining, n_ones, value_ones)
        logits = logits.masked_fill(~allowed, float("-inf"))
        return torch.log_softmax(logits, dim=-1).masked_fill(~allowed.any(-1, keepdim=True), float("-inf"))
    return torch.log_softmax(logits, dim=-1)
