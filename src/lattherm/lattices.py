"""Periodic supercells of simple lattices, built from ASE structures.

A :class:`Lattice` is a periodic supercell ``repeats`` times a primitive cell. Sites are ordered
as ASE's ``Atoms.repeat`` orders them, whole primitive cells at a time:
``index = ((i1 * n2 + i2) * n3 + i3) * n_basis + b``. For the square lattice this is row-major order
``i * L + j``, the raster order of a fixed-order autoregressive model.

Configurations are integer arrays of species indices, ``x[i] in {0, ..., K-1}``; for binary
systems the spin is ``s = 2 x - 1`` (x = 1 is spin up, or Au for CuAu).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk

from lattherm.errors import LatthermError

LATTICE_KINDS = ("square", "simple_cubic", "fcc", "fcc_cubic", "bcc", "bcc_cubic")
_DISTANCE_TOL = 1e-6


def _image_shifts(pbc) -> np.ndarray:
    """The 27 (9 in 2D) neighbouring-image shifts of the minimum-image search, in fractional
    units of the supercell, in the order ``displacements`` tries them."""
    shifts = np.array(
        [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float
    )
    return shifts[np.all((shifts == 0) | np.asarray(pbc)[None, :], axis=1)]


class LatticeError(LatthermError):
    """Raised for an unknown lattice kind, a bad supercell shape or a mismatched configuration."""


def _repeat(primitive: Atoms, repeats: tuple[int, int, int]) -> Atoms:
    """``primitive.repeat(repeats)``, the same atoms in the same order with the same positions,
    but with the cell translations added in one vectorised step (ASE adds them cell by cell in a
    Python loop: seconds for 10^6 cells)."""
    cell = np.asarray(primitive.cell[:], dtype=float)
    if primitive.constraints or any(n != 1 and not vec.any() for n, vec in zip(repeats, cell)):
        return primitive.repeat(repeats)  # ASE's own rules for constraints and its error
    atoms = primitive.copy()
    n_cells = math.prod(repeats)
    for name, values in atoms.arrays.items():
        atoms.arrays[name] = np.tile(values, (n_cells,) + (1,) * (values.ndim - 1))
    cells = np.stack(np.meshgrid(*(np.arange(n) for n in repeats), indexing="ij"), axis=-1).reshape(-1, 3)
    atoms.arrays["positions"] += np.repeat(cells @ cell, len(primitive), axis=0)
    atoms.cell = np.array([repeats[c] * cell[c] for c in range(3)])
    return atoms


@dataclass(eq=False)
class Lattice:
    """A periodic supercell of a primitive cell.

    Attributes:
        kind: one of :data:`LATTICE_KINDS`.
        primitive: the primitive (or conventional, for ``fcc_cubic`` and ``bcc_cubic``) cell as
            ``ase.Atoms``.
        repeats: how many times the primitive cell is repeated along each of its vectors.
        dimension: 2 for the square lattice, else 3; a 2D lattice has one layer along z.
    """

    kind: str
    primitive: Atoms
    repeats: tuple[int, int, int]
    dimension: int = 3
    atoms: Atoms = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in LATTICE_KINDS:
            raise LatticeError(f"unknown lattice kind {self.kind!r}; expected one of {LATTICE_KINDS}")
        if len(self.repeats) != 3 or any(int(n) < 1 for n in self.repeats):
            raise LatticeError(f"supercell repeats must be three positive integers, got {self.repeats}")
        self.repeats = tuple(int(n) for n in self.repeats)
        self.atoms = _repeat(self.primitive, self.repeats)

    # -- geometry -------------------------------------------------------------------------
    @property
    def n_sites(self) -> int:
        return len(self.atoms)

    @property
    def n_basis(self) -> int:
        return len(self.primitive)

    @property
    def cell(self) -> np.ndarray:
        """Supercell vectors as rows, shape (3, 3), in Å (or lattice units for spin models)."""
        return np.asarray(self.atoms.cell[:], dtype=float)

    @property
    def positions(self) -> np.ndarray:
        """Cartesian site coordinates, shape (N, 3)."""
        return self.atoms.get_positions()

    @property
    def fractional(self) -> np.ndarray:
        """Fractional coordinates in the supercell, in [0, 1), shape (N, 3)."""
        frac = self.atoms.get_scaled_positions(wrap=True)
        return np.mod(np.round(frac, 12), 1.0)

    @cached_property
    def cell_index(self) -> np.ndarray:
        """Integer coordinates of each site's primitive cell in the supercell, shape (N, 3)."""
        n = np.arange(self.n_sites) // self.n_basis
        n1, n2, n3 = self.repeats
        return np.stack([n // (n2 * n3), (n // n3) % n2, n % n3], axis=1)

    @property
    def basis_index(self) -> np.ndarray:
        """Index of each site within the primitive cell's basis, shape (N,)."""
        return np.arange(self.n_sites) % self.n_basis

    @cached_property
    def displacements(self) -> np.ndarray:
        """Periodic minimum-image displacements r_j - r_i, shape (N, N, 3).

        Works for skewed cells: after wrapping fractional differences to [-1/2, 1/2) the
        shortest image is searched among the 27 neighbouring images. Antisymmetric, also
        where two images are equally short.

        Dense: it holds N x N x 27 x 3 (2D: 9) float64 candidates, so it is refused above
        :data:`MAX_DENSE_SITES` sites. Only the Transformer's attention buckets use it (and
        :attr:`distances`); shells, bonds and tables are O(N) and do not.
        """
        if self.n_sites > MAX_DENSE_SITES:
            images = len(_image_shifts(self.atoms.pbc))
            need = self.n_sites**2 * images * 3 * 8 / 2**30
            raise LatticeError(
                f"the dense minimum-image displacements of the {self.n_sites}-site {self.kind} supercell "
                f"{self.repeats} would need N x N x {images} x 3 float64 candidates, at least {need:.3g} GiB; "
                f"dense N x N geometry "
                f"(lattice.distances, e.g. a Transformer's attention buckets) is limited to {MAX_DENSE_SITES} sites")
        frac = self.fractional
        dfrac = frac[None, :, :] - frac[:, None, :]
        dfrac -= np.round(dfrac)
        periodic = self.atoms.pbc
        shifts = np.array(
            [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float
        )
        shifts = shifts[np.all((shifts == 0) | periodic[None, :], axis=1)]
        candidates = (dfrac[:, :, None, :] + shifts[None, None, :, :]) @ self.cell
        best = np.argmin(np.linalg.norm(candidates, axis=-1), axis=-1)
        disp = np.take_along_axis(candidates, best[:, :, None, None], axis=2)[:, :, 0, :]
        # Where two images tie (distance L/2 on even lattices) argmin may pick either; take the
        # i < j choice and mirror it so that r_ij = -r_ji exactly.
        upper = np.triu(np.ones((len(frac), len(frac)), dtype=bool))
        return np.where(upper[:, :, None], disp, -disp.transpose(1, 0, 2))

    @cached_property
    def distances(self) -> np.ndarray:
        """Minimum-image distances, shape (N, N)."""
        return np.linalg.norm(self.displacements, axis=-1)

    def shell_distances(self, n_shells: int) -> np.ndarray:
        """The first ``n_shells`` distinct neighbour distances (excluding 0).

        These are the distinct minimum-image distances of the supercell (so a small supercell
        has few shells). Every site sees the same distances as the site of its basis in the
        first primitive cell, so only those ``n_basis`` reference rows of the minimum-image
        distance matrix are computed: O(N * n_basis) time and memory.
        """
        d = self._shells
        if len(d) < n_shells:
            raise LatticeError(f"supercell {self.repeats} has only {len(d)} neighbour shells")
        return d[:n_shells].copy()

    def neighbour_pairs(self, shell: int = 1) -> np.ndarray:
        """Unique site pairs (i < j) at the ``shell``-th neighbour distance, shape (M, 2), sorted
        by i, then j.

        In a supercell so small that a neighbour is reached through two periodic images, the
        pair is listed once per image (the bond appears twice in the periodic Hamiltonian),
        which is what the infinite-lattice sum gives, e.g. the L = 2 square Ising model. A site
        that is its own neighbour through a periodic image (a supercell one cell wide) is listed
        as (i, i) once per pair of opposite images. Built in O(N) from the bonds of one
        primitive cell (:meth:`_bond_offsets`).
        """
        target = self.shell_distances(shell)[shell - 1]
        i, j, positive = self._directed_bonds(target)
        keep = (i < j) | ((i == j) & positive)
        return self._sorted_pairs(i[keep], j[keep])

    def neighbour_table(self, shell: int = 1) -> np.ndarray:
        """For each site, its neighbours in the given shell, shape (N, z), with repetitions
        where periodic images coincide, so that sums over the table equal lattice sums.
        Each row is sorted; a site that is its own periodic-image neighbour lists itself once
        per image."""
        target = self.shell_distances(shell)[shell - 1]
        i, j, _ = self._directed_bonds(target)
        pairs = self._sorted_pairs(i, j)
        counts = np.bincount(pairs[:, 0], minlength=self.n_sites)
        if len(counts) and np.any(counts != counts[0]):
            raise LatticeError("sites have unequal coordination; the lattice is not uniform")
        z = int(counts[0]) if len(counts) else 0
        return np.ascontiguousarray(pairs[:, 1].reshape(self.n_sites, z))

    # -- O(N) geometry by periodic cell arithmetic ------------------------------------------
    @property
    def _translation_symmetric(self) -> bool:
        """Whether every primitive-cell translation maps the supercell onto itself (true unless
        a non-periodic axis is repeated)."""
        return all(bool(p) or n == 1 for p, n in zip(self.atoms.pbc, self.repeats))

    @cached_property
    def _shells(self) -> np.ndarray:
        """Every distinct minimum-image distance > 0 of the supercell, ascending: the same
        values (grouped at 1e-6) that the dense ``distances`` matrix holds."""
        if self._translation_symmetric:
            frac = self.fractional
            rows = np.concatenate([self._minimum_image_distances(frac, b) for b in range(self.n_basis)])
        else:  # no translation symmetry along a repeated open axis: the dense matrix
            rows = self.distances.ravel()
        distances = rows[rows > _DISTANCE_TOL]
        # Group by rounded value, but return an exact member of each group.
        _, first = np.unique(np.round(distances, 6), return_index=True)
        return distances[first]

    def _minimum_image_distances(self, frac: np.ndarray, site: int) -> np.ndarray:
        """Row ``site`` of :attr:`distances` (shape (N,); ``frac`` = :attr:`fractional`) by the
        same minimum-image search (fractional differences wrapped to [-1/2, 1/2), then the
        shortest of the 27 neighbouring images), without the N x N matrix. Equal to the dense
        row to rounding (the Cartesian image shift is added after the cell product)."""
        dfrac = frac - frac[site]
        dfrac -= np.round(dfrac)
        cell = self.cell
        cart = dfrac @ cell
        best = np.full(len(frac), np.inf)
        for shift in _image_shifts(self.atoms.pbc) @ cell:
            image = cart + shift
            np.minimum(best, np.sqrt(np.einsum("ij,ij->i", image, image)), out=best)
        return best

    def _bond_offsets(self, target: float) -> list[tuple[int, int, np.ndarray]]:
        """Every bond of length ``target`` (within 1e-4) of the infinite periodic lattice that
        starts in one primitive cell: ``(b, b2, offsets)`` with ``offsets`` (K, 3) the integer
        primitive-cell translations n such that |r_b2 + n @ A - r_b| = target (A the primitive
        cell). Along an open (non-periodic) axis n stays within the supercell's repeats."""
        prim_cell = np.asarray(self.primitive.cell[:], dtype=float)
        pos = self.primitive.get_positions()
        spacing = 1.0 / np.linalg.norm(np.linalg.inv(prim_cell).T, axis=1)
        # |fractional component| of any vector shorter than target + tol is <= (target + tol) / spacing
        # and basis fractional differences lie in (-1, 1)
        reach = np.ceil((target + 1e-4) / spacing).astype(int) + 1
        ranges = [np.arange(-r, r + 1) if p else np.arange(-min(r, n - 1), min(r, n - 1) + 1)
                  for r, p, n in zip(reach, self.atoms.pbc, self.repeats)]
        grid = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
        translations = grid @ prim_cell
        out = []
        for b in range(self.n_basis):
            for b2 in range(self.n_basis):
                dist = np.linalg.norm(pos[b2] + translations - pos[b], axis=-1)
                out.append((b, b2, grid[np.abs(dist - target) < 1e-4]))
        return out

    def _directed_bonds(self, target: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All bonds of length ``target`` counted over periodic images, in both directions:
        site arrays ``i``, ``j`` and whether the image offset is lexicographically positive (to
        keep one of each pair of opposite self-images). O(N * z) by integer arithmetic on the
        cell coordinates: site = ((i1 * n2 + i2) * n3 + i3) * n_basis + b."""
        nb, reps = self.n_basis, np.asarray(self.repeats)
        n_cells = int(np.prod(reps))
        cells = self.cell_index[::nb]  # (n_cells, 3), cell c holds sites c * nb + b
        strides = np.array([reps[1] * reps[2], reps[2], 1]) * nb
        ii, jj, pp = [], [], []
        for b, b2, offsets in self._bond_offsets(target):
            if len(offsets) == 0:
                continue
            j = np.full((n_cells, len(offsets)), b2, dtype=np.int64)
            valid = np.ones(j.shape, dtype=bool)
            for k in range(3):
                t = cells[:, k, None] + offsets[None, :, k]
                if self.atoms.pbc[k]:
                    t %= reps[k]
                else:
                    valid &= (t >= 0) & (t < reps[k])
                j += t * strides[k]
            i = np.broadcast_to((np.arange(n_cells, dtype=np.int64) * nb + b)[:, None], j.shape)
            n0, n1, n2 = offsets.T
            positive = (n0 > 0) | ((n0 == 0) & ((n1 > 0) | ((n1 == 0) & (n2 > 0))))
            ii.append(i[valid])
            jj.append(j[valid])
            pp.append(np.broadcast_to(positive[None, :], j.shape)[valid])
        if not ii:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool)
        return np.concatenate(ii), np.concatenate(jj), np.concatenate(pp)

    def _sorted_pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Pairs (i, j) as an (M, 2) int64 array sorted by i, then j (``np.lexsort`` order)."""
        n = np.int64(self.n_sites)
        key = np.sort(i.astype(np.int64) * n + j)
        return np.stack([key // n, key % n], axis=1)

    def fcc_sublattices(self) -> np.ndarray:
        """Index 0..3 of the simple-cubic sublattice of each FCC site, shape (N,).

        The conventional cubic cell (side a) holds one site of each sublattice at
        (0,0,0), (0,1/2,1/2), (1/2,0,1/2), (1/2,1/2,0) times a. L1_0 and L1_2 order are
        patterns of species over these four sublattices.
        """
        if self.kind not in ("fcc", "fcc_cubic"):
            raise LatticeError(f"sublattices are defined for FCC lattices, not {self.kind!r}")
        a = self.lattice_constant
        # The four sublattices are periodic only if every supercell vector is a simple-cubic
        # lattice vector (e.g. an odd number of primitive repeats maps sublattice 0 onto 1..3).
        if not np.allclose(self.cell / a, np.round(self.cell / a), atol=1e-8):
            raise LatticeError(f"supercell {self.repeats} of {self.kind!r} has vectors that are not "
                               "integer multiples of a, so its four sublattices are not periodic")
        half = np.mod(np.round(self.positions / (a / 2)).astype(int), 2)
        codes = {(0, 0, 0): 0, (0, 1, 1): 1, (1, 0, 1): 2, (1, 1, 0): 3}
        return np.array([codes[tuple(h)] for h in half], dtype=np.int64)

    @property
    def lattice_constant(self) -> float:
        return float(self.primitive.info["lattice_constant"])

    # -- conversions ----------------------------------------------------------------------
    def validate_configuration(self, x: np.ndarray, n_species: int = 2) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[-1] != self.n_sites:
            raise LatticeError(f"configuration has {x.shape[-1]} sites, lattice has {self.n_sites}")
        if x.size and (x.min() < 0 or x.max() >= n_species):
            raise LatticeError(f"species indices must lie in [0, {n_species}), got {x.min()}..{x.max()}")
        return x.astype(np.int64)

    def to_atoms(self, x: Sequence[int], species: Sequence[str]) -> Atoms:
        """An ``ase.Atoms`` of the supercell decorated with ``species[x_i]`` on site i."""
        x = self.validate_configuration(np.asarray(x), len(species))
        atoms = self.atoms.copy()
        atoms.set_chemical_symbols([species[k] for k in x])
        return atoms

    def from_atoms(self, atoms: Atoms, species: Sequence[str]) -> np.ndarray:
        """Species indices of ``atoms`` on this lattice's sites, matched by position."""
        if len(atoms) != self.n_sites:
            raise LatticeError(f"structure has {len(atoms)} atoms, lattice has {self.n_sites} sites")
        frac = np.linalg.solve(self.cell.T, atoms.get_positions().T).T
        d = frac[:, None, :] - self.fractional[None, :, :]
        d -= np.round(d)
        dist = np.linalg.norm(d @ self.cell, axis=-1)
        site = np.argmin(dist, axis=1)
        if np.max(dist[np.arange(len(site)), site]) > 1e-3 or len(set(site)) != self.n_sites:
            raise LatticeError("structure positions do not match the lattice sites")
        lookup = {s: k for k, s in enumerate(species)}
        unknown = set(atoms.get_chemical_symbols()) - set(lookup)
        if unknown:
            raise LatticeError(f"species {sorted(unknown)} not in {list(species)}")
        x = np.empty(self.n_sites, dtype=np.int64)
        x[site] = [lookup[s] for s in atoms.get_chemical_symbols()]
        return x

    def to_structure(self, x: Sequence[int], species: Sequence[str]):
        """A pymatgen ``Structure`` of the decorated supercell (e.g. for CIF export)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(self.to_atoms(x, species))

    def write_cif(self, path, x: Sequence[int], species: Sequence[str]) -> None:
        from pymatgen.io.cif import CifWriter

        CifWriter(self.to_structure(x, species)).write_file(str(path))

    def describe(self) -> dict:
        return {"kind": self.kind, "repeats": list(self.repeats), "n_sites": self.n_sites,
                "lattice_constant": self.lattice_constant}


# ASE bulk builders of the 3D lattice kinds: (element standing in for a site, structure, cubic cell)
_BULK = {"fcc": ("Cu", "fcc", False), "fcc_cubic": ("Cu", "fcc", True),
         "bcc": ("Fe", "bcc", False), "bcc_cubic": ("Fe", "bcc", True)}


def _primitive(kind: str, a: float) -> tuple[Atoms, int]:
    if kind == "square":
        prim, dim = Atoms("H", positions=[[0, 0, 0]], cell=np.diag([a, a, a]), pbc=(True, True, False)), 2
    elif kind == "simple_cubic":
        prim, dim = Atoms("H", positions=[[0, 0, 0]], cell=np.diag([a, a, a]), pbc=True), 3
    elif kind in _BULK:
        element, structure, cubic = _BULK[kind]
        prim, dim = bulk(element, structure, a=a, cubic=cubic), 3
    else:
        raise LatticeError(f"unknown lattice kind {kind!r}; expected one of {LATTICE_KINDS}")
    prim.info["lattice_constant"] = float(a)
    return prim, dim


MAX_SITES = 65536
"""Most sites a system may have (a global sanity cap, checked by systems and the workflow config).

Set by the slowest consumer that every model may reach, the cluster-expansion Hamiltonian (icet's
supercell orbit list plus per-site cluster tables, built in Python): about 1 ms and 47 KB per site
on a 2-core machine (16,384 sites: 16 s, 0.8 GB; bench/bench_geometry.py), so 65,536 sites (e.g.
fcc_cubic 32 x 32 x 16) take about a minute and 3 GB. The lattice geometry itself is O(N): a
1000 x 1000 square Ising system (10^6 sites) builds in under 1 s and 0.3 GB. Dense N x N consumers
need their own, lower limits:
:data:`MAX_DENSE_SITES` for ``Lattice.displacements`` / ``distances`` (the Transformer), and the
Sherrington-Kirkpatrick coupling matrix (8 N^2 bytes: 32 GiB at this cap)."""

MAX_DENSE_SITES = 4096
"""Most sites for the dense minimum-image geometry (``Lattice.displacements`` and ``distances``,
used only by the Transformer's attention buckets): it holds N x N x 27 x 3 float64 candidates,
about 10 GB and 50 s at 4096 sites (64 x 64) on a 2-core machine with 23 GB; memory grows as N^2."""

SITES_PER_CELL = {"square": 1, "simple_cubic": 1, "fcc": 1, "fcc_cubic": 4, "bcc": 1, "bcc_cubic": 2}
"""Sites in the repeated cell of each kind (primitive cells hold one; conventional cubic ones more)."""


def cell_sites(kind: str, size: Sequence[int]) -> int:
    """Number of sites of the supercell ``size`` of ``kind``, without building it."""
    if kind not in SITES_PER_CELL:
        raise LatticeError(f"unknown lattice kind {kind!r}; expected one of {LATTICE_KINDS}")
    if len(size) != (2 if kind == "square" else 3):
        raise LatticeError(f"{kind} lattice needs {2 if kind == 'square' else 3} sizes, got {list(size)}")
    return SITES_PER_CELL[kind] * math.prod(int(n) for n in size)


def make_lattice(kind: str, size: Sequence[int] | int, a: float = 1.0) -> Lattice:
    """Build a periodic supercell.

    Args:
        kind: ``square`` (L x L), ``simple_cubic``, ``fcc`` (primitive cell repeated
            n1 x n2 x n3: the paper's 2x2x4 = 16 sites), ``fcc_cubic`` (conventional cells of
            4 sites), ``bcc`` (primitive cells of 1 site) or ``bcc_cubic`` (conventional cells
            of 2 sites).
        size: an int L (square: L x L; 3D kinds: L x L x L) or the repeats per axis.
        a: cubic lattice constant (Å for FCC and BCC alloys; 1 for spin models).
    """
    if not np.isfinite(a) or a <= 0:
        raise LatticeError(f"lattice constant must be positive, got {a}")
    prim, dim = _primitive(kind, a)
    if isinstance(size, (int, np.integer)):
        size = (size, size) if dim == 2 else (size, size, size)
    if any(isinstance(n, bool) or int(n) != n for n in size):
        raise LatticeError(f"supercell sizes must be integers, got {tuple(size)}")
    size = tuple(int(n) for n in size)
    if dim == 2:
        if len(size) != 2:
            raise LatticeError(f"square lattice needs two sizes (L1, L2), got {size}")
        repeats = (size[0], size[1], 1)
    else:
        if len(size) != 3:
            raise LatticeError(f"{kind} lattice needs three sizes (n1, n2, n3), got {size}")
        repeats = size
    return Lattice(kind=kind, primitive=prim, repeats=repeats, dimension=dim)


# -- attention geometry of the Transformer (lattherm.models.transformer) -----------------------
def lattice_coordinates(lattice: Lattice) -> np.ndarray:
    """Site coordinates in units of the primitive vectors: cell index + basis position, (N, 3)."""
    basis = lattice.primitive.get_scaled_positions(wrap=True)
    return lattice.cell_index + basis[lattice.basis_index]


def infinite_lattice_shells(lattice: Lattice, n_shells: int) -> np.ndarray:
    """The first ``n_shells`` neighbour distances of the infinite lattice (a small supercell may
    miss some through periodic images; these mean the same distance on every supercell)."""
    prim = lattice.primitive
    basis = prim.get_positions()
    reach = n_shells + 2  # shell n lies within n + 2 primitive translations for these lattices
    ranges = [range(-reach, reach + 1) if periodic else range(1) for periodic in prim.pbc]
    shifts = np.array(list(itertools.product(*ranges)), dtype=float) @ prim.cell[:]
    vec = basis[None, :, None, :] - basis[:, None, None, :] + shifts[None, None, :, :]
    dist = np.unique(np.round(np.linalg.norm(vec, axis=-1), 8))
    return dist[dist > 1e-8][:n_shells]


def shell_buckets(lattice: Lattice, n_shells: int) -> np.ndarray:
    """Shell of each site pair, (N, N) int64: 0 itself, k = 1..n_shells the k-th shell of the
    infinite lattice, n_shells + 1 beyond. Dense: limited to :data:`MAX_DENSE_SITES` sites."""
    dist = lattice.distances
    buckets = np.full(dist.shape, n_shells + 1, dtype=np.int64)
    tol = 1e-6 * lattice.lattice_constant
    for k, d in enumerate(infinite_lattice_shells(lattice, n_shells), start=1):
        buckets[np.abs(dist - d) < tol] = k
    np.fill_diagonal(buckets, 0)
    return buckets


def sites_within(buckets: np.ndarray, n_shells: int) -> np.ndarray:
    """Each site's sites within ``n_shells`` shells, itself first, from :func:`shell_buckets`:
    (N, M) int64, padded with N where a site has fewer than the most (M)."""
    near = buckets <= n_shells
    counts = near.sum(1)
    key = np.where(near, buckets != 0, 2)  # itself, then the near sites in site order, then the rest
    order = np.argsort(key, axis=1, kind="stable")[:, : counts.max()]
    return np.where(np.arange(counts.max()) < counts[:, None], order, len(buckets))


def lattice_patches(lattice: Lattice, patch: Sequence[int] | None) -> np.ndarray:
    """The sites of each patch, (M, k) int64: blocks of ``patch`` repeats of the lattice's cell
    (all basis sites) along each axis, in row-major order of the blocks, sites in site order
    (first: the block's corner); None: one site per patch. The patch must tile the supercell."""
    if patch is None:
        return np.arange(lattice.n_sites)[:, None]
    d, repeats = lattice.dimension, [int(r) for r in lattice.repeats[: lattice.dimension]]
    if len(patch) != d or any(r % int(p) for r, p in zip(repeats, patch)):
        raise LatticeError(f"patch {list(patch)} does not tile the {'x'.join(map(str, repeats))} cell: it needs one "
                           f"entry per lattice axis ({d}), each dividing the cell's repeats")
    block = lattice.cell_index[:, :d] // np.asarray(patch, dtype=np.int64)
    blocks_per_axis = np.asarray(repeats) // np.asarray(patch)
    patch_of_site = np.ravel_multi_index(tuple(block.T), tuple(blocks_per_axis))
    return np.argsort(patch_of_site, kind="stable").reshape(int(np.prod(blocks_per_axis)), -1)


def point_group_permutations(lattice: Lattice) -> np.ndarray:
    """The site permutations of the supercell's symmetry operations that fix site 0, (|S|, N)
    int64, the identity first: ``perm[g, i]`` is the site that operation g takes site i to.

    These are the operations of the parent lattice's space group that map the periodic supercell
    onto itself (spglib on the supercell of identical sites), restricted to the stabiliser of one
    site: the point group about it, at most 48 operations (the full group is that times the N
    translations). A supercell less symmetric than its parent keeps only the operations that map
    its vectors onto lattice vectors of itself (fcc 2x2x4: 12 of 48). A 2D lattice gets a long
    third axis so that no operation mixes it into the plane; an operation acting only on that
    axis (the mirror z -> -z) is the identity on the sites and is listed once.
    """
    return _symmetry_permutations(lattice, stabiliser=True)


def space_group_permutations(lattice: Lattice) -> np.ndarray:
    """The site permutations of all the supercell's symmetry operations, the translations
    included (:func:`point_group_permutations` times the N translations on a Bravais lattice),
    (|G|, N) int64, the identity first."""
    return _symmetry_permutations(lattice, stabiliser=False)


def _symmetry_permutations(lattice: Lattice, stabiliser: bool) -> np.ndarray:
    import spglib  # lazily: only the lattice-symmetric neural samplers need it

    cell = lattice.cell.copy()
    if lattice.dimension == 2:
        cell[2] *= 10 * max(np.linalg.norm(cell[0]), np.linalg.norm(cell[1])) / np.linalg.norm(cell[2])
    frac = lattice.fractional
    species = lattice.basis_index * 0 + 1  # one species: the symmetry of the empty lattice
    ops = spglib.get_symmetry((cell, frac, species), symprec=1e-5)
    if ops is None:
        raise LatticeError(f"spglib found no symmetry operations for the {lattice.kind} cell {lattice.repeats}")
    grid = 10**6  # fractional coordinates on a fine grid: sites found by lookup, O(N) per operation
    keys = {tuple(k): i for i, k in enumerate(np.mod(np.rint(frac * grid).astype(np.int64), grid))}
    perms = set()
    for rotation, translation in zip(ops["rotations"], ops["translations"]):
        origin = frac[0] @ rotation.T + translation - frac[0]
        if stabiliser and np.abs(origin - np.round(origin)).max() > 1e-5:  # moves site 0
            continue
        moved = np.mod(np.rint((frac @ rotation.T + translation) * grid).astype(np.int64), grid)
        perm = [keys.get(tuple(k), -1) for k in moved]
        if -1 in perm or len(set(perm)) != len(perm):
            raise LatticeError(f"a symmetry operation of the {lattice.kind} cell {lattice.repeats} is not a site permutation")
        perms.add(tuple(perm))
    identity = tuple(range(lattice.n_sites))
    return np.array([identity, *sorted(perms - {identity})], dtype=np.int64)


def size_tag(size: Sequence[int]) -> str:
    """[4, 4] -> "4x4": a cell size in file names, table columns and on the command line."""
    return "x".join(str(int(n)) for n in size)


def parse_size(tag: str) -> list[int]:
    """"4x4" -> [4, 4] (the inverse of :func:`size_tag`)."""
    try:
        size = [int(n) for n in tag.split("x")]
    except ValueError:
        size = []
    if not size or min(size) < 1:
        raise LatticeError(f"a cell size looks like 4x4 or 2x2x4 (positive integers), got {tag!r}")
    return size
