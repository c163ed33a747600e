"""Monte Carlo moves: one kind of trial step each, run on all chains of a (B, N) batch at once.

As in icet's mchammer, where each ensemble owns its trial step, a move owns everything that
depends on it: the sweep, what one sweep counts as, the ensemble it samples and which
Hamiltonians and compositions it can sample. The driver (:mod:`lattherm.mcmc.samplers`) only
calls these methods; :data:`MOVES` is the one place a name ("flip", "swap", "wolff") maps to a
class.

Every chain has its own inverse temperature: ``beta`` is a (B,) tensor. Sweeps update ``x`` in
place and return per-chain counts (B,).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lattherm.hamiltonians.base import Hamiltonian
from lattherm.hamiltonians.ising import BondIsing, Ising


def _accept(delta: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
    """Metropolis rule min(1, exp(-beta delta)), as a boolean per trial."""
    u = torch.rand(delta.shape, generator=gen, device=delta.device, dtype=torch.float64)
    return torch.log(u) < -beta * delta


def _accept_heat_bath(delta: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
    """Heat-bath (Glauber) rule 1 / (1 + exp(beta delta)), as a boolean per trial."""
    u = torch.rand(delta.shape, generator=gen, device=delta.device, dtype=torch.float64)
    return u < torch.sigmoid(-beta * delta)


def colour_classes(hamiltonian: Hamiltonian) -> list[Tensor] | None:
    """Sets of mutually non-interacting sites (greedy graph colouring of the neighbour table)
    for pair models, where the table is the whole interaction graph; ``None`` otherwise."""
    if not isinstance(hamiltonian, BondIsing):
        return None
    table = hamiltonian.neighbours.cpu().numpy()
    colour = np.full(hamiltonian.n_sites, -1)
    for i in range(hamiltonian.n_sites):
        used = set(colour[table[i]])
        colour[i] = next(c for c in range(len(used) + 1) if c not in used)
    device = hamiltonian.device
    return [torch.as_tensor(np.nonzero(colour == c)[0], device=device) for c in range(colour.max() + 1)]


class Move(ABC):
    """One kind of trial step for the chains of one Hamiltonian.

    Subclasses declare the ``ensemble`` they sample (the names of :data:`lattherm.systems.ENSEMBLES`;
    "semi_grand" is the fixed-field ensemble of a spin model) and implement :meth:`sweep`.
    """

    ensemble: ClassVar[str]

    def __init__(self, hamiltonian: Hamiltonian):
        self.hamiltonian = hamiltonian

    @classmethod
    def check(cls, hamiltonian: Hamiltonian, n_ones: int | None) -> None:
        """Raise ``ValueError`` unless this move can sample ``hamiltonian`` with ``n_ones``
        species-1 sites (``None``: free composition). By default the composition must be free."""
        if n_ones is not None:
            raise ValueError(f"n_ones fixes the composition, which {cls.__name__} moves "
                             f"({cls.ensemble} ensemble) do not conserve")

    @property
    def trials_per_sweep(self) -> int:
        """Trials in one sweep of one chain: N single-site (or pair) trials by default."""
        return self.hamiltonian.n_sites

    @abstractmethod
    def sweep(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        """One sweep of every chain, in place; returns the accepted trials per chain (B,)."""

    def acceptance(self, accepted: Tensor, n_sweeps: int) -> Tensor:
        """Per-chain acceptance from the accepted counts summed over ``n_sweeps`` sweeps."""
        return accepted / (n_sweeps * self.trials_per_sweep)


class Flip(Move):
    """Single-site flips through ``flip_delta`` (any Hamiltonian; wrap a CE in ``SemiGrand``).

    Sites are drawn uniformly at random, one per chain per trial, with the Metropolis rule. For
    pair models with a complete neighbour table (``BondIsing``: Ising, Edwards-Anderson) sites are
    instead updated a colour class at a time (checkerboard on bipartite lattices) with the
    heat-bath rule: sites of one class do not interact, so their trials are independent and run
    in one call.
    """

    ensemble = "semi_grand"

    def __init__(self, hamiltonian: Hamiltonian):
        super().__init__(hamiltonian)
        self.classes = colour_classes(hamiltonian)

    def sweep(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        if self.classes is None:
            return self._random_scan(x, beta, gen)
        return self._by_colour_class(x, beta, gen)

    def _random_scan(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        b, n = x.shape
        rows = torch.arange(b, device=x.device)
        accepted = torch.zeros(b, dtype=torch.int64, device=x.device)
        for _ in range(n):
            sites = torch.randint(n, (b,), generator=gen, device=x.device)
            ok = _accept(self.hamiltonian.flip_delta(x, sites), beta, gen)
            x[rows[ok], sites[ok]] = 1 - x[rows[ok], sites[ok]]
            accepted += ok
        return accepted

    def _by_colour_class(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        b = x.shape[0]
        accepted = torch.zeros(b, dtype=torch.int64, device=x.device)
        for sites in self.classes:
            # all sites of a class at once: repeat each chain once per site of the class
            k = len(sites)
            deltas = self.hamiltonian.flip_delta(x.repeat_interleave(k, dim=0), sites.repeat(b)).view(b, k)
            # heat bath, not Metropolis: a fixed sweep order with Metropolis flips every spin at
            # beta = 0 (all trials accepted), a deterministic, non-ergodic chain
            ok = _accept_heat_bath(deltas, beta[:, None], gen)
            x[:, sites] = torch.where(ok, 1 - x[:, sites], x[:, sites])
            accepted += ok.sum(dim=1)
        return accepted


class Swap(Move):
    """Canonical exchange of a random species-1 site with a random species-0 site
    (``swap_delta``, Metropolis rule): the composition is conserved."""

    ensemble = "canonical"

    @classmethod
    def check(cls, hamiltonian: Hamiltonian, n_ones: int | None) -> None:
        if n_ones is None or not 0 < n_ones < hamiltonian.n_sites:
            raise ValueError(f"swap moves need 0 < n_ones < {hamiltonian.n_sites}, got n_ones={n_ones}")

    def sweep(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        b, n = x.shape
        rows = torch.arange(b, device=x.device)
        accepted = torch.zeros(b, dtype=torch.int64, device=x.device)
        for _ in range(n):
            ones = torch.multinomial(x.double(), 1, generator=gen).squeeze(1)
            zeros = torch.multinomial(1.0 - x.double(), 1, generator=gen).squeeze(1)
            ok = _accept(self.hamiltonian.swap_delta(x, ones, zeros), beta, gen)
            x[rows[ok], ones[ok]] = 0
            x[rows[ok], zeros[ok]] = 1
            accepted += ok
        return accepted


class Wolff(Move):
    """Wolff cluster updates of the ferromagnetic Ising model at h = 0: one sweep is one cluster
    flip per chain, always accepted; the counts returned are the cluster sizes."""

    ensemble = "semi_grand"

    @classmethod
    def check(cls, hamiltonian: Hamiltonian, n_ones: int | None) -> None:
        super().check(hamiltonian, n_ones)
        if not isinstance(hamiltonian, Ising) or hamiltonian.h != 0.0 or hamiltonian.J <= 0:
            raise ValueError("Wolff updates need a ferromagnetic Ising model (J > 0) in zero field "
                             "(h = 0, no SemiGrand dmu)")

    @property
    def trials_per_sweep(self) -> int:
        return 1

    def acceptance(self, accepted: Tensor, n_sweeps: int) -> Tensor:
        """Mean cluster size as a fraction of N: how much of the lattice one update moves."""
        return super().acceptance(accepted, n_sweeps) / self.hamiltonian.n_sites

    def sweep(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        """Clusters grow breadth-first on all chains together: each newly added site activates the
        bond to each aligned neighbour outside the cluster with p = 1 - exp(-2 beta J)."""
        b, n = x.shape
        table = self.hamiltonian.neighbours  # (N, z)
        rows = torch.arange(b, device=x.device)
        seed = torch.randint(n, (b,), generator=gen, device=x.device)
        spin = x[rows, seed]
        p_add = (1.0 - torch.exp(-2.0 * beta * self.hamiltonian.J))[:, None, None]
        cluster = torch.zeros((b, n), dtype=torch.bool, device=x.device)
        cluster[rows, seed] = True
        frontier = cluster.clone()
        aligned = x == spin[:, None]
        while frontier.any():
            bonds = frontier[:, :, None] & (torch.rand((b, n, table.shape[1]), generator=gen, device=x.device,
                                                        dtype=torch.float64) < p_add)
            reached = torch.zeros((b, n), dtype=torch.float64, device=x.device)
            reached.scatter_add_(1, table.expand(b, -1, -1).reshape(b, -1), bonds.reshape(b, -1).double())
            frontier = (reached > 0) & aligned & ~cluster
            cluster |= frontier
        x[cluster] = 1 - x[cluster]
        return cluster.sum(dim=1)


MOVES: dict[str, type[Move]] = {"flip": Flip, "swap": Swap, "wolff": Wolff}
