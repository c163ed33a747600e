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
        by_orbit: list[list[list[list[int]]]] = [[[] for _ in orbits] for _ in range(n)]
        for alpha, (padded, weights) in enumerate(zip(all_members, all_weights)):
            for row, weight in zip(padded.tolist(), weights.tolist()):
                sites = [k for k in row if k != n]
                for i in set(sites):
                    if sites.count(i) % 2:
                        rest = [k for k in sites if k != i]
                        partners[i].append(rest + [n] * (3 - len(rest)))
                        partner_weights[i].append(weight)
                        by_orbit[i][alpha].append(rest)
        self._build_packed_field_tables(orbits, by_orbit, [n * params[1 + a] / m for a, m in enumerate(n_clusters)])
        width = max(len(p) for p in partners)
        partner_table = np.full((n, width, 3), n, dtype=np.int64)
        weight_table = np.zeros((n, width))
        for i in range(n):
            partner_table[i, : len(partners[i])] = partners[i]
            weight_table[i, : len(partners[i])] = partner_weights[i]
        self.register_buffer("local_partners", torch.from_numpy(partner_table))
        self.register_buffer("local_weights", torch.from_numpy(weight_table))

    # Rows per chunk of the bit-sliced local-field tables (a power of two: the adder tree's height).
    FIELD_CHUNK = 16

    def _build_packed_field_tables(self, orbits, by_orbit: list, orbit_weights: list[float]) -> None:
        """Tables for :meth:`packed_local_field`: per site and orbit, the partner sites of the
        clusters through the site (odd multiplicity), cut into chunks of ``FIELD_CHUNK`` rows and
        grouped by the number of partner columns (order - 1), padded with site n (bit 0)."""
        n, rows = self.n_sites, self.FIELD_CHUNK
        offset = np.zeros(n)
        chunk_weights: list[float] = []
        slices: list[tuple[int, int]] = []  # the chunks of each orbit, in table order
        weights: list[float] = []  # and the orbit's weight N J / M per cluster
        self.field_orders: list[int] = []
        for order in sorted({orbit.order for orbit in orbits}):
            alphas = [a for a, orbit in enumerate(orbits) if orbit.order == order]
            for a in alphas:
                for i in range(n):
                    offset[i] += orbit_weights[a] * len(by_orbit[i][a])
            if order == 1:  # the singlet: a constant field, nothing to gather
                continue
            chunks = {a: -(-max(len(by_orbit[i][a]) for i in range(n)) // rows) for a in alphas}
            if any(len(by_orbit[i][a]) > 255 for a in alphas for i in range(n)):
                raise ClusterExpansionError("more than 255 clusters of one orbit through a site")
            n_chunks = sum(chunks.values())
            if n_chunks == 0:
                continue
            table = np.full((n, n_chunks, rows, order - 1), n, dtype=np.int64)
            first = 0
            for a in alphas:
                for i in range(n):
                    for r, rest in enumerate(by_orbit[i][a]):
                        table[i, first + r // rows, r % rows, : len(rest)] = rest
                if chunks[a]:
                    slices.append((len(chunk_weights), len(chunk_weights) + chunks[a]))
                    weights.append(orbit_weights[a])
                chunk_weights += [orbit_weights[a]] * chunks[a]
                first += chunks[a]
            self.register_buffer(f"field_table_order{order}", torch.from_numpy(table))
            self.field_orders.append(order)
        self.register_buffer("field_offset", torch.from_numpy(offset))
        self.field_orbit_slices = slices
        self.field_orbit_weights_list = weights

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


    # -- bit-sliced local moves (many chains at once: lattherm.mcmc.moves) -------------------
    def packed_local_field(self, bits: Tensor, sites: Tensor) -> Tensor:
        """Local fields h_i = sum over clusters c through i of w_c * (product of the partner
        spins) of every packed configuration, for each site in ``sites`` (K,): (K, 64 W) float64.

        ``bits`` are :meth:`parity_bits` (N + 1, W). The partner parities are XORs of whole
        words (64 configurations each) and their odd counts per orbit chunk come from a
        bit-sliced adder tree, so all of it is exact integer arithmetic up to the final
        weighted sum h = offset_i - 2 sum_chunks w_chunk n_odd. Sites may interact with each
        other: each field is that of the configuration as it is in ``bits``.
        """
        parities = []
        for order in self.field_orders:
            table = getattr(self, f"field_table_order{order}")[sites]  # (K, C, R, order - 1)
            parity = bits.index_select(0, table[..., 0].flatten())
            for c in range(1, order - 1):
                parity ^= bits.index_select(0, table[..., c].flatten())
            parities.append(parity.view(*table.shape[:3], -1))
        planes = _count_ones(torch.cat(parities, dim=1))  # bit k of the odd counts, (K, C, W) each
        counts = unpack_bits(planes[0])
        for k, plane in enumerate(planes[1:], start=1):
            counts += unpack_bits(plane) << k  # uint8: a chunk has at most 16 clusters
        # chunks of one orbit summed in uint8 (at most 255 clusters of an orbit through a site),
        # then h = offset - 2 sum_orbits w n_odd in float64
        h = self.field_offset[sites][:, None].expand(len(sites), counts.shape[-1]).clone()
        for (a, b), weight in zip(self.field_orbit_slices, self.field_orbit_weights_list):
            n_odd = counts[:, a:b].sum(dim=1, dtype=torch.uint8) if b - a > 1 else counts[:, a]
            h.add_(n_odd, alpha=-2.0 * weight)
        return h

    def packed_flip_delta(self, bits: Tensor, sites: Tensor) -> Tensor:
        """E(x with site i flipped) - E(x) for each i in ``sites`` and every packed configuration,
        (K, 64 W): -2 s_i h_i (each flip on its own, from the configuration in ``bits``)."""
        s = 1.0 - 2.0 * unpack_bits(bits[sites]).to(torch.float64)
        return -2.0 * s * self.packed_local_field(bits, sites)

    def packed_swap_delta(self, bits: Tensor, i: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        """Energy changes of exchanging sites i[k] and j[k] in every packed configuration, and
        whether the species differ ((K, 64 W) float64, bool; the change is 0 where they do not).

        Exact when no cluster holds a site of pair k and a site of another pair k' (the pairs
        are then independent); i[k] and j[k] themselves may share clusters, also several times
        on a self-interacting cell: an exchange of unlike species flips both, dE = dE_i(x) +
        dE_j(x with i flipped), and h_i does not depend on s_i, so both fields come from one
        call on x with every i flipped (``bits`` is restored before returning)."""
        k = len(i)
        bi, bj = unpack_bits(bits[i]), unpack_bits(bits[j])
        bits[i] = ~bits[i]
        try:
            h = self.packed_local_field(bits, torch.cat([i, j]))
        finally:
            bits[i] = ~bits[i]
        s_i, s_j = 1.0 - 2.0 * bi.to(torch.float64), 1.0 - 2.0 * bj.to(torch.float64)
        unlike = bi != bj
        delta = -2.0 * (s_i * h[:k] + s_j * h[k:])
        return torch.where(unlike, delta, torch.zeros_like(delta)), unlike

    def bits_to_species(self, bits: Tensor, batch: int) -> Tensor:
        """Inverse of :meth:`parity_bits`: species indices (batch, N) uint8."""
        minus = unpack_bits(bits[: self.n_sites])[:, :batch].T
        return minus if self.point_function[1] < 0 else 1 - minus


_BYTE_BITS: dict[torch.device, Tensor] = {}


def unpack_bits(words: Tensor) -> Tensor:
    """(..., W) int64 words -> (..., 64 W) uint8 bits, bit p of word w at position 64 w + p
    (a lookup of each byte's 8 bits: several times faster than shifts on CPU)."""
    table = _BYTE_BITS.get(words.device)
    if table is None:
        table = ((torch.arange(256)[:, None] >> torch.arange(8)) & 1).to(torch.uint8).to(words.device)
        _BYTE_BITS[words.device] = table
    flat = words.contiguous().view(torch.uint8).reshape(-1).long()
    return table.index_select(0, flat).view(*words.shape[:-1], 64 * words.shape[-1])


def pack_bits(bits: Tensor) -> Tensor:
    """(..., 64 W) bool/0-1 -> (..., W) int64 words; the inverse of :func:`unpack_bits`."""
    powers = (1 << torch.arange(8, device=bits.device)).to(torch.uint8)
    grouped = bits.to(torch.uint8).reshape(*bits.shape[:-1], -1, 8)
    return (grouped * powers).sum(dim=-1, dtype=torch.uint8).view(torch.int64)


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
