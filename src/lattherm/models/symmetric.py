"""Symmetrised neural samplers: mixtures of a base sampler over symmetry images (VAN, Wu-Wang-Zhang 2019).

An autoregressive sampler trained by reverse KL often learns only some of the symmetry-equivalent
variants of a low-energy state; it then misses part of Z, and F_IS is too high by
k_B T ln(variants / learned) with an ESS and an error bar that do not show it (ESS is measured
on the model's own samples). For a set S of maps g of configuration space that leave the
Hamiltonian invariant, the mixture

    q_S(x) = (1/|S|) sum_{g in S} q(g x)

is exactly normalised for any such set (each q(g .) sums to 1); it draws y ~ q (the base's own
sampler), picks g uniformly and returns g^-1 y, and its ln q costs |S| ``log_prob`` passes of
the base (one concatenated pass in training; one image at a time otherwise, to bound memory),
so the estimators stay exact for any Hamiltonian.

- :class:`Z2Symmetric`: the global spin flip x -> 1 - x of zero-field Ising models and spin
  glasses, S = {1, flip}; the canonical constraint survives it only at half filling.
- :class:`LatticeSymmetric`: the site permutations of the supercell's point group about one
  site (:func:`lattherm.lattices.point_group_permutations`, at most 48), which map an ordered
  alloy's orientational variants onto each other (the three L1_0 orientations of CuAu). The
  translations are left out: N times the passes, and the translational variants of an ordered
  phase differ in which species the first placed site takes, a choice an autoregressive model
  learns at its first step. Permutations keep n_ones, so canonical systems stay canonical.

Both compose (the spin flip outermost). A model spec's ``z2_symmetric`` and
``lattice_symmetric`` (true, false or ``auto``) say whether the model is trained and sampled
symmetrised; ``auto`` is resolved by :func:`resolve_symmetries` against the system when
training starts (spin flip: where the system is spin-flip symmetric; lattice: cluster-expansion
systems, whose ordered phases come in symmetry-equivalent variants), and the checkpoint records
the outcome, so a loaded model is the one that was trained.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from lattherm.models.base import NeuralSampler


class Symmetrised(NeuralSampler):
    """The equal-weight mixture of ``base`` over a set of images g x (subclasses say which)."""

    def __init__(self, base: NeuralSampler):
        super().__init__()
        self.base = base
        self.n_sites = base.n_sites
        self.n_species = base.n_species

    @property
    def config(self):
        """The innermost model's config (the wrappers have none of their own)."""
        return self.base.config

    @config.setter
    def config(self, value) -> None:
        self.base.config = value

    @abstractmethod
    def images(self, x: Tensor) -> Tensor:
        """The images g x of every row for each g in S, (|S|, B, N)."""

    def log_prob(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None) -> Tensor:
        self._check_n_ones(n_ones)
        images = self.images(self.check_x(x))
        k, B = images.shape[:2]
        if torch.is_grad_enabled():  # training: one pass, one graph
            log_q = self.base.log_prob(images.reshape(k * B, -1), None if cond is None else cond.repeat(k, 1), n_ones)
        else:  # sampling: one image at a time keeps memory at one batch's (all 12 at once: 10 GB on 16 sites)
            log_q = torch.cat([self.base.log_prob(image, cond, n_ones) for image in images])
        return torch.logsumexp(log_q.view(k, B), 0) - math.log(k)

    def _check_n_ones(self, n_ones: int | None) -> None:
        """Refuse a canonical constraint that the images do not keep."""

    def on_lattice(self, lattice) -> "Symmetrised":
        self.base.on_lattice(lattice)
        self.n_sites = self.base.n_sites
        return self


class Z2Symmetric(Symmetrised):
    """The mixture of ``base`` and its global spin flip, with equal weights."""

    def __init__(self, base: NeuralSampler):
        if base.n_species != 2:
            raise ValueError(f"the spin flip needs 2 species, the model has {base.n_species}")
        super().__init__(base)

    def _check_n_ones(self, n_ones: int | None) -> None:
        if n_ones is not None and 2 * n_ones != self.n_sites:
            raise ValueError(f"the spin flip maps n_ones = {n_ones} to {self.n_sites - n_ones}: a canonical "
                             "system can be symmetrised only at half filling")

    def images(self, x: Tensor) -> Tensor:
        return torch.stack([x, 1 - x])

    @torch.no_grad()
    def sample(self, n: int, cond: Tensor | None = None, n_ones: int | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        self._check_n_ones(n_ones)
        x, log_q = self.base.sample(n, cond=cond, n_ones=n_ones, generator=generator)
        log_q_mirror = self.base.log_prob(1 - x, cond, n_ones)
        device = generator.device if generator is not None else x.device
        flip = (torch.rand((n, 1), generator=generator, device=device) < 0.5).to(x.device)
        return torch.where(flip, 1 - x, x), torch.logaddexp(log_q, log_q_mirror) - math.log(2.0)

    def hyperparameters(self) -> dict:
        return {**self.base.hyperparameters(), "z2_symmetric": True}


class LatticeSymmetric(Symmetrised):
    """The mixture of ``base`` over the point group about one site of its supercell, with equal
    weights: g x = x[:, perm_g] for the permutations of
    :func:`lattherm.lattices.point_group_permutations`, recomputed on every ``on_lattice``."""

    def __init__(self, base: NeuralSampler, lattice):
        super().__init__(base)
        self._set_permutations(lattice)

    def _set_permutations(self, lattice) -> None:
        from lattherm.lattices import Lattice, point_group_permutations

        if not isinstance(lattice, Lattice):
            raise ValueError("lattice_symmetric needs a lattice: a system without one (Sherrington-Kirkpatrick) "
                             "has no site permutations")
        if lattice.n_sites != self.base.n_sites:
            raise ValueError(f"the lattice has {lattice.n_sites} sites, the model {self.base.n_sites}")
        perms = torch.as_tensor(point_group_permutations(lattice))
        weight = next(self.base.parameters(), None)
        # not in the state dict: a property of the cell, rebuilt on every cell
        self.register_buffer("perms", perms if weight is None else perms.to(weight.device), persistent=False)
        self.register_buffer("inverse_perms", torch.argsort(self.perms, dim=1), persistent=False)

    def images(self, x: Tensor) -> Tensor:
        # (g x)_i = x_{perm_g[i]}: the configuration with the species of site perm_g[i] at site i
        return x[:, self.perms].permute(1, 0, 2)

    @torch.no_grad()
    def sample(self, n: int, cond: Tensor | None = None, n_ones: int | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        y, _ = self.base.sample(n, cond=cond, n_ones=n_ones, generator=generator)
        device = generator.device if generator is not None else y.device
        g = torch.randint(len(self.perms), (n,), generator=generator, device=device).to(y.device)
        x = y.gather(1, self.inverse_perms[g])  # g^-1 y: then g x = y
        return x, self.log_prob(x, cond, n_ones)

    def on_lattice(self, lattice) -> "LatticeSymmetric":
        super().on_lattice(lattice)
        self._set_permutations(lattice)
        return self

    def hyperparameters(self) -> dict:
        return {**self.base.hyperparameters(), "lattice_symmetric": True}


def innermost(model: NeuralSampler) -> NeuralSampler:
    """The network under any symmetrising wrappers."""
    while isinstance(model, Symmetrised):
        model = model.base
    return model


def flat_images(model: NeuralSampler, x: Tensor) -> Tensor:
    """The images of x under every wrapper of ``model`` composed, (K, B, N), the first x itself
    (each wrapper's first map is the identity): the mixture is q(x) = (1/K) sum_k q_innermost(images[k])."""
    images = x[None]
    while isinstance(model, Symmetrised):
        images = torch.cat([model.images(image) for image in images])
        model = model.base
    return images


def symmetrise(base: NeuralSampler, cell) -> NeuralSampler:
    """``base`` wrapped as its config says (``lattice_symmetric`` and ``z2_symmetric`` true):
    the one nesting, lattice inside, spin flip outside, that checkpoints rebuild."""
    model = base
    if base.config.lattice_symmetric is True:
        model = LatticeSymmetric(model, cell)
    if base.config.z2_symmetric is True:
        model = Z2Symmetric(model)
    return model


def with_symmetries(model: NeuralSampler, cell, z2: bool = False, lattice: bool = False) -> NeuralSampler:
    """``model`` with the spin flip and/or the point-group mixture added where it lacks them (to
    sample a model trained without them), nested as :func:`symmetrise` nests them."""
    inner = model.base if isinstance(model, Z2Symmetric) else model
    if lattice and not isinstance(inner, LatticeSymmetric):
        inner = LatticeSymmetric(inner, cell)
    return Z2Symmetric(inner) if z2 or isinstance(model, Z2Symmetric) else inner


def spin_flip_symmetric(hamiltonian, n_ones: int | None = None, n_configs: int = 64) -> bool:
    """Whether E(1 - x) = E(x) (to 1e-10 relative) and the ensemble maps to itself (canonical:
    only at half filling), checked on random configurations of a fixed seed (no global RNG)."""
    n = hamiltonian.n_sites
    if n_ones is not None and 2 * n_ones != n:
        return False
    x = _random_configurations(n, n_ones, n_configs).to(hamiltonian.device)
    return _same_energies(hamiltonian, x, 1 - x)


def broken_permutations(hamiltonian, perms, n_ones: int | None = None, n_configs: int = 64) -> list[int]:
    """The indices of the site permutations (rows of ``perms``) that change the energy of some
    random configuration of a fixed seed (to 1e-10 relative): those that are not symmetries."""
    x = _random_configurations(hamiltonian.n_sites, n_ones, n_configs).to(hamiltonian.device)
    perms = torch.as_tensor(np.asarray(perms.cpu() if isinstance(perms, Tensor) else perms)).to(x.device)
    return [g for g, perm in enumerate(perms) if not _same_energies(hamiltonian, x, x[:, perm])]


def symmetry_images(system) -> Tensor | None:
    """The site permutations of the system's space group (:func:`lattherm.lattices.space_group_permutations`)
    that keep its energy, (G, N), the identity first; None where only the identity does (no
    lattice, or couplings that break every operation: a spin glass). Training by example draws
    its examples through them (:class:`lattherm.training.TrainConfig`)."""
    from lattherm.lattices import space_group_permutations

    if system.lattice is None:
        return None
    perms = space_group_permutations(system.lattice)
    broken = set(broken_permutations(system.hamiltonian, perms, system.n_ones))
    kept = [g for g in range(len(perms)) if g not in broken]
    return torch.as_tensor(perms[kept]) if len(kept) > 1 else None


def _random_configurations(n: int, n_ones: int | None, n_configs: int) -> Tensor:
    gen = torch.Generator().manual_seed(12345)
    if n_ones is None:
        return torch.randint(0, 2, (n_configs, n), generator=gen)
    ranks = torch.argsort(torch.rand(n_configs, n, generator=gen), dim=1)
    return (ranks < n_ones).long()


def _same_energies(hamiltonian, x: Tensor, y: Tensor) -> bool:
    e, e_image = hamiltonian.energy(x), hamiltonian.energy(y)
    scale = e.abs().max().clamp_min(1e-300)
    return bool(((e - e_image).abs() <= 1e-10 * scale).all())


def check_lattice_symmetry(model: NeuralSampler, hamiltonian, n_ones: int | None = None) -> None:
    """Refuse a lattice-symmetric ``model`` whose permutations are not all symmetries of
    ``hamiltonian`` (the mixture would then be a sampler of another distribution's variants:
    still exact, but pointless); a no-op for other models."""
    wrapper = model
    while isinstance(wrapper, Symmetrised) and not isinstance(wrapper, LatticeSymmetric):
        wrapper = wrapper.base
    if not isinstance(wrapper, LatticeSymmetric):
        return
    broken = broken_permutations(hamiltonian, wrapper.perms, n_ones)
    if broken:
        raise ValueError(f"lattice_symmetric = true, but {len(broken)} of the {len(wrapper.perms)} point-group "
                         f"permutations of the cell change the energy (the Hamiltonian is not lattice-symmetric, "
                         "e.g. random couplings): set lattice_symmetric to false or auto")


def resolve_lattice_symmetric(option, system) -> bool:
    """A ``lattice_symmetric`` option (true, false or ``auto``) for ``system``: ``auto`` is true
    for cluster expansions only (ordered alloy phases with orientational variants; the Ising
    ferromagnet's two ground states are the spin flip's, and a spin glass has no lattice symmetry)."""
    if option == "auto":
        return system.lattice is not None and system.config.model == "cluster_expansion"
    return bool(option)


def resolve_symmetries(model: NeuralSampler, system, spin_flip: bool) -> NeuralSampler:
    """The model to train on ``system``: its network wrapped as :func:`symmetrise` says, after
    ``auto`` is resolved: ``z2_symmetric`` to ``spin_flip`` (whether the training distribution
    is spin-flip symmetric), ``lattice_symmetric`` by :func:`resolve_lattice_symmetric`. The network's config then
    records the outcome (true or false), which the checkpoint saves. A lattice-symmetric model
    whose permutations change the energy is refused (:func:`check_lattice_symmetry`)."""
    base = innermost(model)
    z2 = base.config.z2_symmetric
    base.config = replace(base.config, z2_symmetric=spin_flip if z2 == "auto" else bool(z2),
                          lattice_symmetric=resolve_lattice_symmetric(base.config.lattice_symmetric, system))
    wrapped = symmetrise(base, system.cell)
    check_lattice_symmetry(wrapped, system.hamiltonian, system.n_ones)
    return wrapped
