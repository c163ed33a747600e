"""Monte Carlo moves: one kind of trial step each, run on all chains of a (B, N) batch at once.

As in icet's mchammer, where each ensemble owns its trial step, a move owns everything that
depends on it: the sweep, what one sweep counts as, the ensemble it samples and which
Hamiltonians and compositions it can sample. The driver (:mod:`lattherm.mcmc.samplers`) only
calls these methods; :data:`MOVES` is the one place a name ("flip", "swap", "wolff") maps to a
class. :class:`VarianceConstrainedFlip` (the VCSGC ensemble) takes its parameters (phi, kappa)
and is built as an object, not by name.

Every chain has its own inverse temperature: ``beta`` is a (B,) tensor. Sweeps update ``x`` in
place and return per-chain counts (B,).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lattherm.hamiltonians.base import Hamiltonian, SemiGrand
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian, pack_bits, unpack_bits
from lattherm.hamiltonians.ising import BondIsing, Ising


def _metropolis(log_ratio: Tensor, u: Tensor) -> Tensor:
    """Metropolis rule min(1, exp(log_ratio)) with uniform draws ``u``, as a boolean per trial."""
    return torch.log(u) < log_ratio


def _heat_bath(log_ratio: Tensor, u: Tensor) -> Tensor:
    """Heat-bath (Glauber) rule 1 / (1 + exp(-log_ratio)) with uniform draws ``u``."""
    return u < torch.sigmoid(log_ratio)


def _uniform(like: Tensor, gen: torch.Generator) -> Tensor:
    return torch.rand(like.shape, generator=gen, device=like.device, dtype=torch.float64)


def _accept(delta: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
    """Metropolis rule min(1, exp(-beta delta)), as a boolean per trial."""
    return _metropolis(-beta * delta, _uniform(delta, gen))


def packed_cluster_expansion(hamiltonian: Hamiltonian) -> tuple[ClusterExpansionHamiltonian, float] | None:
    """(CE, dmu) when ``hamiltonian`` is a cluster expansion or ``SemiGrand`` of one (the
    bit-sliced parallel moves apply), else ``None``."""
    if isinstance(hamiltonian, ClusterExpansionHamiltonian):
        return hamiltonian, 0.0
    if isinstance(hamiltonian, SemiGrand) and isinstance(hamiltonian.base, ClusterExpansionHamiltonian):
        return hamiltonian.base, hamiltonian.dmu
    return None


def interaction_graph(hamiltonian: Hamiltonian) -> list[np.ndarray] | None:
    """Per site, the other sites it shares a term of the energy with (symmetric): the neighbour
    table of a pair model, every site of a common cluster for a cluster expansion; ``None``
    for other Hamiltonians (e.g. all-to-all SK)."""
    n = hamiltonian.n_sites
    if isinstance(hamiltonian, BondIsing):
        table = hamiltonian.neighbours.cpu().numpy()
    elif (ce := packed_cluster_expansion(hamiltonian)) is not None:
        table = ce[0].local_partners.cpu().numpy().reshape(n, -1)
    else:
        return None
    adjacent = np.zeros((n, n + 1), dtype=bool)
    np.put_along_axis(adjacent, table, True, axis=1)
    adjacent = adjacent[:, :n]  # drop the padding site n
    adjacent |= adjacent.T
    np.fill_diagonal(adjacent, False)
    return [np.flatnonzero(row) for row in adjacent]


def colour_classes(hamiltonian: Hamiltonian) -> list[Tensor] | None:
    """Sets of mutually non-interacting sites (greedy colouring of :func:`interaction_graph`:
    the neighbour table of a pair model, the clusters of a cluster expansion; on a small,
    self-interacting cell every class may be one site); ``None`` for other Hamiltonians."""
    graph = interaction_graph(hamiltonian)
    if graph is None:
        return None
    colour = np.full(hamiltonian.n_sites, -1)
    for i in range(hamiltonian.n_sites):
        used = set(colour[graph[i]])
        colour[i] = next(c for c in range(len(used) + 1) if c not in used)
    device = hamiltonian.device
    return [torch.as_tensor(np.nonzero(colour == c)[0], device=device) for c in range(colour.max() + 1)]


def swap_schedules(hamiltonian: Hamiltonian, n_schedules: int = 32, seed: int = 0) -> list[list[tuple[Tensor, Tensor]]]:
    """Sweeps of parallel exchanges: each schedule is a list of steps, each step pairs (i, j)
    such that no energy term holds sites of two different pairs (the two sites of one pair may
    interact), N pairs per sweep. Pairs are drawn at random (a random site order, greedily),
    independently of any configuration, so a Metropolis exchange of each pair is a symmetric
    proposal; the pairs of one step commute, which keeps detailed balance exact. A fixed seed
    keeps them reproducible; their union is checked to connect all sites (ergodicity)."""
    graph = interaction_graph(hamiltonian)
    n = hamiltonian.n_sites
    rng = np.random.default_rng(seed)
    device = hamiltonian.device
    parent = np.arange(n)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    schedules: list[list[tuple[Tensor, Tensor]]] = []
    while len(schedules) < n_schedules or len({root(a) for a in range(n)}) > 1:
        steps, left = [], n
        while left > 0:
            blocked = np.zeros(n, dtype=bool)
            pairs: list[tuple[int, int]] = []
            open_site = None
            for c in rng.permutation(n):
                if blocked[c] or c == open_site:
                    continue
                if open_site is None:
                    open_site = c
                    continue
                pairs.append((open_site, c))
                for site in (open_site, c):
                    blocked[site] = True
                    blocked[graph[site]] = True
                open_site = None
                if len(pairs) == left:
                    break
            for a, b in pairs:
                parent[root(a)] = root(b)
            i, j = np.array(pairs).T
            steps.append((torch.as_tensor(i, device=device), torch.as_tensor(j, device=device)))
            left -= len(pairs)
        schedules.append(steps)
    return schedules


def _padded(beta: Tensor, size: int) -> Tensor:
    """Per-chain beta padded with zeros to the packed batch (64 chains per word)."""
    return torch.cat([beta.to(torch.float64), beta.new_zeros(size - len(beta), dtype=torch.float64)])


class Move(ABC):
    """One kind of trial step for the chains of one Hamiltonian.

    Subclasses declare the ``ensemble`` they sample (the names of :data:`lattherm.systems.ENSEMBLES`;
    "semi_grand" is the fixed-field ensemble of a spin model; "vcsgc" the variance-constrained
    semi-grand one) and implement :meth:`sweep`.
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

    def exchange_log_ratio(self, x: Tensor, energy: Tensor, betas: Tensor, n_chains: int) -> Tensor:
        """Replica exchange between neighbouring rungs (rows ordered (rung, chain), ``betas`` one per
        rung, ``energy`` per row): the log acceptance ratio (K - 1, R) of exchanging the
        configuration a of chain r at rung k with b at rung k + 1, u_k(a) + u_{k+1}(b) - u_k(b) -
        u_{k+1}(a), u_k = -ln of rung k's weight. Here u = beta E: (beta_k - beta_{k+1}) (E_a - E_b),
        parallel tempering."""
        e = energy.view(len(betas), n_chains)
        return (betas[:-1] - betas[1:])[:, None] * (e[:-1] - e[1:])


class Flip(Move):
    """Single-site flips through ``flip_delta`` (any Hamiltonian; wrap a CE in ``SemiGrand``).

    With ``parallel`` (the default) and a Hamiltonian whose interaction graph is known, sites are
    updated a colour class at a time (:func:`colour_classes`; checkerboard on bipartite lattices)
    with the heat-bath rule: sites of one class do not interact, so their trials are independent
    and run in one call, and a sweep updates every site once (N trials per chain). Pair models
    (``BondIsing``: Ising, Edwards-Anderson) use ``flip_delta``; a cluster expansion (or
    ``SemiGrand`` of one) runs bit-sliced, 64 chains per int64 word
    (``ClusterExpansionHamiltonian.packed_flip_delta``). Otherwise (``parallel=False``, or e.g.
    SK) sites are drawn uniformly at random, one per chain per trial, with the Metropolis rule.

    The ensemble enters through :meth:`_decide`, which turns the energy changes into accepted
    flips; :class:`VarianceConstrainedFlip` overrides it.
    """

    ensemble = "semi_grand"
    tracks_composition: ClassVar[bool] = False  # whether _decide needs the species each trial changes

    def __init__(self, hamiltonian: Hamiltonian, parallel: bool = True):
        super().__init__(hamiltonian)
        self.classes = colour_classes(hamiltonian) if parallel else None
        self.packed = packed_cluster_expansion(hamiltonian) if parallel else None

    def sweep(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        if self.classes is None:
            return self._random_scan(x, beta, gen)
        if self.packed is not None:
            return self._packed_by_colour_class(x, beta, gen)
        return self._by_colour_class(x, beta, gen)

    def _decide(self, log_ratio: Tensor, x_old: Tensor | None, rule, gen: torch.Generator) -> Tensor:
        """Accepted trials (K, S) bool: flips of K mutually non-interacting sites on each of S
        chains (the packed path pads S to whole words), ``log_ratio`` the change of the log
        Boltzmann weight of each flip on its own, ``x_old`` the species each flip removes (given
        when :attr:`tracks_composition`), ``rule`` Metropolis or heat bath. Here the K flips of a
        chain are independent, so all are decided at once."""
        return rule(log_ratio, _uniform(log_ratio, gen))

    def _packed_by_colour_class(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        ce, dmu = self.packed
        bits = ce.parity_bits(x)  # (N + 1, W): 64 chains per word
        size = 64 * bits.shape[1]
        beta = _padded(beta, size)[None, :]
        accepted = torch.zeros(size, dtype=torch.int64, device=x.device)
        x_is_minus = bool(ce.point_function[1] < 0)  # species 1 <-> bit 1
        for sites in self.classes:
            delta = ce.packed_flip_delta(bits, sites)  # (K, 64 W)
            x_old = None
            if dmu or self.tracks_composition:
                minus = unpack_bits(bits[sites]).to(torch.float64)
                x_old = minus if x_is_minus else 1.0 - minus
            if dmu:
                delta = delta + 2.0 * dmu * (2.0 * x_old - 1.0)
            ok = self._decide(-beta * delta, x_old, _heat_bath, gen)
            bits[sites] ^= pack_bits(ok)
            accepted += ok.sum(dim=0)
        x.copy_(ce.bits_to_species(bits, x.shape[0]))
        return accepted[: x.shape[0]]

    def _random_scan(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        b, n = x.shape
        rows = torch.arange(b, device=x.device)
        accepted = torch.zeros(b, dtype=torch.int64, device=x.device)
        for _ in range(n):
            sites = torch.randint(n, (b,), generator=gen, device=x.device)
            log_ratio = -beta * self.hamiltonian.flip_delta(x, sites)
            ok = self._decide(log_ratio[None], x[rows, sites].to(torch.float64)[None], _metropolis, gen)[0]
            x[rows[ok], sites[ok]] = 1 - x[rows[ok], sites[ok]]
            accepted += ok
        return accepted

    def _by_colour_class(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        b = x.shape[0]
        accepted = torch.zeros(b, dtype=torch.int64, device=x.device)
        for sites in self.classes:
            deltas = self.hamiltonian.flip_deltas(x, sites)  # (B, K): all sites of the class at once
            # heat bath, not Metropolis: a fixed sweep order with Metropolis flips every spin at
            # beta = 0 (all trials accepted), a deterministic, non-ergodic chain
            ok = self._decide((-beta[:, None] * deltas).T, x[:, sites].T.to(torch.float64), _heat_bath, gen).T
            x[:, sites] = torch.where(ok, 1 - x[:, sites], x[:, sites])
            accepted += ok.sum(dim=1)
        return accepted


class VarianceConstrainedFlip(Flip):
    """Flips in the variance-constrained semi-grand canonical ensemble (VCSGC; Sadigh & Erhart,
    PRB 86, 134204 (2012); mchammer's ``VCSGCEnsemble``), of weight

        exp(-beta E - kappa N (c + phi / 2)^2),    c = n / N,

    n the number of species-1 sites (x = 1: Au in CuAu), exactly mchammer's weight with
    ``phis={species[1]: phi}`` and ``kappa`` (its docstring's "+ kappa N (...)^2" is a sign
    typo; its acceptance rule, ``do_vcsgc_flip``, has this weight). A large kappa pins c near
    -phi / 2 also inside a miscibility gap, and d(F/N)/dc = -2 kappa k_B T (<c> + phi / 2)
    (:func:`lattherm.mcmc.integration.vcsgc_free_energy_derivative`).

    ``phi`` is one number or one per chain (the rows of :func:`lattherm.mcmc.samplers.run_chains`),
    like beta; ``kappa`` one positive number. The kappa term couples all sites through c, so the
    flips of one colour class, independent in energy, are not independent in weight: their
    energy changes still come from one (bit-sliced) call, since no flip of the class changes
    another's, and then the sites are decided one after another, each against the composition
    the previous ones left: every decision is an exact single-site heat-bath update. Without
    colour classes, random sites with the Metropolis rule, as mchammer.
    """

    ensemble = "vcsgc"
    tracks_composition = True

    def __init__(self, hamiltonian: Hamiltonian, phi: float | Tensor, kappa: float, parallel: bool = True):
        super().__init__(hamiltonian, parallel)
        phi = torch.as_tensor(phi, dtype=torch.float64, device=hamiltonian.device).reshape(-1)
        if len(phi) == 0 or not bool(torch.isfinite(phi).all()):
            raise ValueError(f"phi must be one or more finite numbers, got {phi.tolist()}")
        if not (math.isfinite(kappa) and kappa > 0):
            raise ValueError(f"kappa must be a finite positive number, got {kappa!r}")
        self.phi, self.kappa = phi, float(kappa)
        self._ones: Tensor | None = None  # species-1 count of each chain during a sweep
        self._phi_rows: Tensor | None = None

    def exchange_log_ratio(self, x: Tensor, energy: Tensor, betas: Tensor, n_chains: int) -> Tensor:
        """:meth:`Move.exchange_log_ratio` with the kappa term, which differs between rungs of
        different phi: kappa N [(c_a + phi_a/2)^2 + (c_b + phi_b/2)^2 - (c_a + phi_b/2)^2 -
        (c_b + phi_a/2)^2] = kappa (n_a - n_b) (phi_a - phi_b), n the species-1 counts. Between
        neighbouring phis at one beta the energy cancels: only compositions are exchanged."""
        k = len(betas)
        ones = x.sum(dim=1).to(torch.float64).view(k, n_chains)
        phi = self.phi.expand(x.shape[0]).view(k, n_chains)
        kappa_term = self.kappa * (ones[:-1] - ones[1:]) * (phi[:-1] - phi[1:])
        return super().exchange_log_ratio(x, energy, betas, n_chains) + kappa_term

    def log_weight_change(self, ones: Tensor, gain: Tensor, phi: Tensor) -> Tensor:
        """Change of -kappa N (c + phi / 2)^2 when a chain's ``ones`` species-1 sites become
        ``ones + gain`` (gain +-1): -kappa gain ((2 ones + gain) / N + phi)."""
        return -self.kappa * gain * ((2.0 * ones + gain) / self.hamiltonian.n_sites + phi)

    def sweep(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        if len(self.phi) not in (1, x.shape[0]):
            raise ValueError(f"got {len(self.phi)} values of phi for {x.shape[0]} chains; give one, or one per chain")
        self._ones = x.sum(dim=1).to(torch.float64)
        self._phi_rows = self.phi.expand(x.shape[0])
        return super().sweep(x, beta, gen)

    def _decide(self, log_ratio: Tensor, x_old: Tensor | None, rule, gen: torch.Generator) -> Tensor:
        width = log_ratio.shape[-1]
        if len(self._ones) < width:  # the packed path's padding chains (beta 0; discarded)
            pad = self._ones.new_zeros(width - len(self._ones))
            self._ones, self._phi_rows = torch.cat([self._ones, pad]), torch.cat([self._phi_rows, pad])
        u = _uniform(log_ratio, gen)
        ok = torch.empty(log_ratio.shape, dtype=torch.bool, device=log_ratio.device)
        for k in range(log_ratio.shape[0]):
            gain = 1.0 - 2.0 * x_old[k]
            ok[k] = rule(log_ratio[k] + self.log_weight_change(self._ones, gain, self._phi_rows), u[k])
            self._ones += gain * ok[k]
        return ok


class Swap(Move):
    """Canonical exchanges (Metropolis rule): the composition is conserved.

    For a cluster expansion with ``parallel``, a sweep is one of the
    :func:`swap_schedules`: N random site pairs, in steps of pairs that share no cluster with
    each other, each step tried on every chain at once, bit-sliced (64 chains per word,
    ``ClusterExpansionHamiltonian.packed_swap_delta``). A pair of like species is a null move;
    the trials counted (:attr:`proposed`, and the denominator of :meth:`acceptance`) are the
    exchanges of unlike species, what mchammer counts. Otherwise (``parallel=False``, or other
    Hamiltonians) each trial exchanges a random species-1 site with a random species-0 site of
    each chain (``swap_delta``).
    """

    ensemble = "canonical"

    def __init__(self, hamiltonian: Hamiltonian, parallel: bool = False):
        # parallel is opt-in: it is exact (tests/test_mcmc_samplers.py keeps exact samples exact
        # under it), but half its pairs are like species, so per sweep it mixes 2-4x slower than
        # the serial swaps; bit-slicing pays on large cells with many chains (bench/bench_mcmc.py)
        super().__init__(hamiltonian)
        self.packed = packed_cluster_expansion(hamiltonian) if parallel else None
        self.schedules = swap_schedules(hamiltonian) if self.packed is not None else None
        self.proposed: Tensor | None = None  # unlike-species exchanges tried per chain
        self.last_proposed: Tensor | None = None

    @classmethod
    def check(cls, hamiltonian: Hamiltonian, n_ones: int | None) -> None:
        if n_ones is None or not 0 < n_ones < hamiltonian.n_sites:
            raise ValueError(f"swap moves need 0 < n_ones < {hamiltonian.n_sites}, got n_ones={n_ones}")

    def acceptance(self, accepted: Tensor, n_sweeps: int) -> Tensor:
        """Accepted / proposed unlike-species exchanges (parallel CE sweeps; the counter is then
        reset), or accepted / (n_sweeps N)."""
        if self.packed is None or self.proposed is None or self.proposed.shape != accepted.shape:
            return super().acceptance(accepted, n_sweeps)
        proposed, self.proposed = self.proposed, None
        self.last_proposed = proposed  # kept for callers that count trials (bench/bench_mcmc.py)
        return accepted / proposed.clamp_min(1)

    def sweep(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        if self.packed is not None:
            return self._packed_pairs(x, beta, gen)
        return self._random_pairs(x, beta, gen)

    def _packed_pairs(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
        ce = self.packed[0]
        bits = ce.parity_bits(x)
        size = 64 * bits.shape[1]
        beta = _padded(beta, size)[None, :]
        accepted = torch.zeros(size, dtype=torch.int64, device=x.device)
        proposed = torch.zeros(size, dtype=torch.int64, device=x.device)
        schedule = self.schedules[int(torch.randint(len(self.schedules), (1,), generator=gen, device=x.device))]
        for i, j in schedule:
            delta, unlike = ce.packed_swap_delta(bits, i, j)  # (K, 64 W)
            ok = _accept(delta, beta, gen) & unlike
            words = pack_bits(ok)
            bits[i] ^= words
            bits[j] ^= words
            accepted += ok.sum(dim=0)
            proposed += unlike.sum(dim=0)
        x.copy_(ce.bits_to_species(bits, x.shape[0]))
        b = x.shape[0]
        self.proposed = proposed[:b].double() if self.proposed is None or len(self.proposed) != b \
            else self.proposed + proposed[:b]
        return accepted[:b]

    def _random_pairs(self, x: Tensor, beta: Tensor, gen: torch.Generator) -> Tensor:
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
