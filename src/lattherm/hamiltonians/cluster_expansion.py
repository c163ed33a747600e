"""A batched torch cluster-expansion Hamiltonian built from an icet ``ClusterExpansion``.

For a binary alloy every cluster function is a product of +-1 point functions, so the energy of
a batch of configurations is a handful of gathers and products:

    E(x) = N * (J_0 + sum_alpha J_alpha * Phi_alpha(x)),
    Phi_alpha(x) = mean over the clusters c of orbit alpha of prod_{i in c} s_i,

which is exactly what icet's ``ClusterExpansion.predict`` returns per site. The clusters of each
orbit are taken from icet's own supercell orbit list, so small (self-interacting) supercells,
where a cluster may hold the same site twice through periodic images, are handled as icet does.

Evaluation is bit-parallel over the batch: with a bit b_i = 1 where the point function is -1,
a cluster's product of +-1 values is (-1)**(XOR of its bits). Packing 64 configurations into
each int64 word turns the gathers and products into gathers and XORs of whole words, and a
bit-sliced adder tree counts, per orbit and configuration, the clusters of odd parity n_odd:
sum_c prod = M_alpha - 2 n_odd. All of that is integer arithmetic, hence exact; only the final
weighted sum over orbits is float64.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from ase.data import atomic_numbers
from icet import ClusterExpansion
from torch import Tensor

from lattherm.ce.storage import ClusterExpansionError, check_lattice, cluster_expansion_hash, read_cluster_expansion
from lattherm.hamiltonians.base import Hamiltonian
from lattherm.lattices import Lattice

_WORD = 64  # configurations packed per int64 word


class ClusterExpansionHamiltonian(Hamiltonian):
    """Total CE energy (eV) of configurations x (B, N), x_i = index into ``species``.

    Args:
        ce: a binary icet cluster expansion whose parameters give energies in eV per site.
        lattice: the supercell; it must be a supercell of the CE's primitive structure.
        species: chemical symbols for x = 0 and x = 1 (CuAu: 0 = Cu, 1 = Au).
    """

    def __init__(self, ce: ClusterExpansion, lattice: Lattice, species: Sequence[str] = ("Cu", "Au")):
        super().__init__(lattice.n_sites)
        species = tuple(species)
        cs = ce.get_cluster_space_copy()
        ce_species = [sym for sub in cs.chemical_symbols for sym in sub]
        if len(cs.chemical_symbols) != 1 or len(ce_species) != 2:
            raise ClusterExpansionError(
                f"only binary single-sublattice expansions are supported, got species {cs.chemical_symbols}")
        if len(species) != 2 or sorted(species) != sorted(ce_species):
            raise ClusterExpansionError(f"species {list(species)} do not match the CE's species {ce_species}")
        check_lattice(ce, lattice)
        self.ce_hash = cluster_expansion_hash(ce)
        self.species = species
        self.lattice = lattice

        # icet's +-1 point function of each of our species, read off icet itself: the singlet
        # element of the cluster vector of the pure primitive crystal.
        phi = []
        for sym in species:
            pure = cs.primitive_structure.copy()
            pure.set_atomic_numbers([atomic_numbers[sym]] * len(pure))
            phi.append(float(cs.get_cluster_vector(pure)[1]))
        if sorted(phi) != [-1.0, 1.0]:
            raise ClusterExpansionError(f"unexpected icet point functions {phi} for {species}")
        # icet spin = phi[x] = phi0 + (phi1 - phi0) x; with icet's ordering this is s = 2x - 1
        self.register_buffer("point_function", torch.tensor(phi, dtype=torch.float64))

        params = np.asarray(ce.parameters, dtype=np.float64)
        supercell = lattice.to_atoms(np.zeros(lattice.n_sites, dtype=int), species)
        orbits = cs.orbit_list.get_supercell_orbit_list(supercell, cs.fractional_position_tolerance).orbits
        if len(params) != 1 + len(orbits):
            raise ClusterExpansionError(
                f"expected {1 + len(orbits)} parameters (zerolet + one per orbit), got {len(params)}")
        self.n_orbits = len(orbits)
        self.register_buffer("eci", torch.tensor(params))

        n = lattice.n_sites
        if max(orbit.order for orbit in orbits) > 4:
            raise ClusterExpansionError("clusters of order above 4 are not supported")
        # every cluster as 4 site indices, padded with site n: a constant +1 point function
        all_members, all_weights, n_clusters = [], [], []
        for alpha, orbit in enumerate(orbits):
            sites = np.array([[ls.index for ls in cl.lattice_sites] for cl in orbit.clusters], dtype=np.int64)
            padded = np.full((len(sites), 4), n, dtype=np.int64)
            padded[:, : sites.shape[1]] = sites
            all_members.append(padded)
            all_weights.append(np.full(len(sites), n * params[1 + alpha] / len(sites)))
            n_clusters.append(len(sites))
        self.register_buffer("n_clusters", torch.tensor(n_clusters, dtype=torch.float64))
        # Clusters grouped by order and cut into blocks of R rows, R a power of two for the
        # adder tree (each orbit of a Bravais lattice has a multiple of N clusters, so with N a
        # power of two there is no padding). Padding rows point at site n only, whose bit is 0
        # (even parity, never counted).
        rows = 1 << int(np.ceil(np.log2(min(n_clusters))))
        blocks: dict[int, list[np.ndarray]] = {}
        block_orbit: dict[int, list[int]] = {}
        for alpha, (orbit, padded) in enumerate(zip(orbits, all_members)):
            n_blocks = -(-len(padded) // rows)
            table = np.full((n_blocks * rows, orbit.order), n, dtype=np.int64)
            table[: len(padded)] = padded[:, : orbit.order]
            blocks.setdefault(orbit.order, []).append(table.reshape(n_blocks, rows, orbit.order))
            block_orbit.setdefault(orbit.order, []).extend([alpha] * n_blocks)
        self.orders = sorted(blocks)
        for k in self.orders:
            self.register_buffer(f"blocks_order{k}", torch.from_numpy(np.concatenate(blocks[k])))
        self.register_buffer("block_orbit", torch.tensor(sum((block_orbit[k] for k in self.orders), [])))

        # For local moves, per site i the clusters holding i an odd number of times (in the
        # others s_i**2 = 1 cancels, so flipping i leaves them unchanged): their remaining sites
        # ("partners", padded with site n, point function +1) and weights N J_alpha / M_alpha.
        # Then E = (terms without i) + s_i * sum_c w_c prod_partners s, a local field.
        partners: list[list[list[int]]] = [[] for _ in range(n)]
        partner_weights: list[list[float]] = [[] for _ in range(n)]
        for padded, weights in zip(all_members, all_weights):
            for row, weight in zip(padded.tolist(), weights.tolist()):
                sites = [k for k in row if k != n]
                for i in set(sites):
                    if sites.count(i) % 2:
                        rest = [k for k in sites if k != i]
                        partners[i].append(rest + [n] * (3 - len(rest)))
                        partner_weights[i].append(weight)
        width = max(len(p) for p in partners)
        partner_table = np.full((n, width, 3), n, dtype=np.int64)
        weight_table = np.zeros((n, width))
        for i in range(n):
            partner_table[i, : len(partners[i])] = partners[i]
            weight_table[i, : len(partners[i])] = partner_weights[i]
        self.register_buffer("local_partners", torch.from_numpy(partner_table))
        self.register_buffer("local_weights", torch.from_numpy(weight_table))

    @classmethod
    def from_file(cls, path: str | os.PathLike, lattice: Lattice,
                  species: Sequence[str] = ("Cu", "Au"), allow_pickle: bool = False) -> "ClusterExpansionHamiltonian":
        """Read a CE file (:func:`lattherm.ce.storage.read_cluster_expansion`; an icet ``.ce``
        only with ``allow_pickle``) and build the Hamiltonian; errors name the file."""
        ce = read_cluster_expansion(path, allow_pickle=allow_pickle)
        try:
            return cls(ce, lattice, species)
        except ClusterExpansionError as exc:
            raise ClusterExpansionError(f"{path}: {exc}") from None

    # -- energies ---------------------------------------------------------------------------
    def spins(self, x: Tensor) -> Tensor:
        """icet's point-function values of x, (B, N) float64 in {-1, +1}."""
        self.check_input(x)
        phi = self.point_function
        return phi[0] + (phi[1] - phi[0]) * x.to(torch.float64)

    def parity_bits(self, x: Tensor) -> Tensor:
        """Bits b = 1 where icet's point function is -1, packed 64 configurations per word:
        (N + 1, ceil(B / 64)) int64, with a final all-zero row for the padding site."""
        self.check_input(x)
        minus = (x if self.point_function[1] < 0 else 1 - x).to(torch.uint8)
        batch = minus.shape[0]
        minus = torch.cat([minus, minus.new_zeros((-batch) % _WORD, self.n_sites)])
        # 8 configurations per byte (bit j = configuration 8 i + j), then 8 bytes per
        # little-endian int64 word: bit j of word w is configuration 64 w + j
        powers = (1 << torch.arange(8, device=x.device)).to(torch.uint8)
        packed = (minus.reshape(-1, 8, self.n_sites) * powers[:, None]).sum(dim=1, dtype=torch.uint8)
        words = packed.T.contiguous().reshape(self.n_sites, -1, 8).view(torch.int64)[..., 0]  # (N, W)
        return torch.cat([words, words.new_zeros(1, words.shape[1])])

    def cluster_vector(self, x: Tensor) -> Tensor:
        """icet's cluster vector of every configuration, (B, 1 + n_orbits) float64."""
        bits = self.parity_bits(x)
        parities = []
        for k in self.orders:
            members = getattr(self, f"blocks_order{k}")  # (n_blocks, R, k)
            parity = bits.index_select(0, members[..., 0].flatten())
            for c in range(1, k):
                parity ^= bits.index_select(0, members[..., c].flatten())
            parities.append(parity.view(*members.shape[:2], -1))
        n_odd_blocks = _unpack(_count_ones(torch.cat(parities)), x.shape[0])  # (n_blocks, B)
        n_odd = torch.zeros(self.n_orbits, x.shape[0], dtype=torch.float64, device=x.device)
        n_odd.index_add_(0, self.block_orbit, n_odd_blocks)
        cv = (self.n_clusters[:, None] - 2.0 * n_odd) / self.n_clusters[:, None]
        return torch.cat([torch.ones(1, x.shape[0], dtype=torch.float64, device=x.device), cv]).T

    def energy(self, x: Tensor) -> Tensor:
        return self.n_sites * (self.cluster_vector(x) @ self.eci)

    def energy_per_site(self, x: Tensor) -> Tensor:
        """What icet's ``ce.predict`` returns, (B,) eV per site."""
        return self.energy(x) / self.n_sites

    def identity(self) -> dict:
        """The CE file's identity hash (:func:`lattherm.ce.storage.cluster_expansion_hash`): the
        same expansion on any cell compares equal, a changed ECI does not."""
        return {"model": "cluster_expansion", "sha256": self.ce_hash}

    # -- local moves ------------------------------------------------------------------------
    def _partner_products(self, x: Tensor, sites: Tensor) -> tuple[Tensor, Tensor]:
        """Spins s (B, N + 1, padded with +1) and, for each row b, the products of the partner
        spins of every cluster through ``sites[b]`` (B, width)."""
        spins = torch.cat([self.spins(x), torch.ones(x.shape[0], 1, dtype=torch.float64, device=x.device)], 1)
        partners = self.local_partners[sites]  # (B, width, 3)
        products = spins.gather(1, partners.flatten(1)).view(partners.shape).prod(dim=-1)
        return spins, products

    def flip_delta(self, x: Tensor, sites: Tensor) -> Tensor:
        """E(x with x[b, sites[b]] flipped) - E(x) = -2 s_i h_i with the local field
        h_i = sum over clusters through i of w_c * (product of the partner spins)."""
        self.check_input(x)
        rows = torch.arange(x.shape[0], device=x.device)
        spins, products = self._partner_products(x, sites)
        return -2.0 * spins[rows, sites] * (self.local_weights[sites] * products).sum(dim=1)

    def swap_delta(self, x: Tensor, i: Tensor, j: Tensor) -> Tensor:
        """E(x with sites i[b], j[b] exchanged) - E(x). For a binary alloy an exchange of unlike
        species flips both sites: the flip of i, then the flip of j in the configuration where
        i is already flipped (partner products holding i an odd number of times change sign)."""
        self.check_input(x)
        rows = torch.arange(x.shape[0], device=x.device)
        unlike = (x[rows, i] != x[rows, j]).to(torch.float64)
        spins, products_i = self._partner_products(x, i)
        _, products_j = self._partner_products(x, j)
        flips_i = (self.local_partners[j] == i[:, None, None]).sum(dim=-1) % 2  # (B, width)
        products_j = products_j * (1.0 - 2.0 * flips_i)
        delta_i = -2.0 * spins[rows, i] * (self.local_weights[i] * products_i).sum(dim=1)
        delta_j = -2.0 * spins[rows, j] * (self.local_weights[j] * products_j).sum(dim=1)
        return unlike * (delta_i + delta_j)


def _count_ones(words: Tensor) -> list[Tensor]:
    """Bit-sliced population count down the rows: (..., R, W) words, R a power of two, ->
    bit planes [p_0, p_1, ...] of shape (..., W) such that bit j of sum_k 2**k p_k is the number
    of rows with bit j set. A binary tree of ripple-carry adders on whole words."""
    planes = [words]
    while planes[0].shape[-2] > 1:
        carry = None
        summed = []
        for plane in planes:
            a, b = plane[..., 0::2, :], plane[..., 1::2, :]
            half = a ^ b
            if carry is None:
                summed.append(half)
                carry = a & b
            else:
                summed.append(half ^ carry)
                carry = (a & b) | (carry & half)
        planes = summed + [carry]
    return [plane[..., 0, :] for plane in planes]


def _transpose_bytes(x: Tensor) -> Tensor:
    """Transpose each int64 read as an 8 x 8 bit matrix (row k = byte k, column j = bit j):
    three delta swaps (Hacker's Delight, 7-3). Arithmetic right shifts are harmless because
    each mask clears the bits they fill."""
    t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AA
    x = x ^ t ^ (t << 7)
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCC
    x = x ^ t ^ (t << 14)
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0
    return x ^ t ^ (t << 28)


def _unpack(planes: list[Tensor], batch: int) -> Tensor:
    """Counts as float64 (..., batch) from the bit planes of :func:`_count_ones`.

    Eight planes at a time: byte g of plane k holds bit k of the counts of configurations
    8 g .. 8 g + 7. Gathering the eight planes' byte g into one int64 (byte k = plane k) and
    transposing it as an 8 x 8 bit matrix leaves the count of configuration 8 g + j in byte j.
    """
    total = None
    for first in range(0, len(planes), 8):
        group = planes[first : first + 8]
        group = group + [torch.zeros_like(group[0])] * (8 - len(group))
        gathered = torch.stack(group).contiguous().view(torch.uint8).movedim(0, -1).contiguous()
        words = gathered.view(torch.int64)[..., 0]  # (..., 8 W)
        counts = _transpose_bytes(words).unsqueeze(-1).view(torch.uint8).flatten(-2).to(torch.int64)
        total = counts << first if total is None else total + (counts << first)
    return total[..., :batch].to(torch.float64)
