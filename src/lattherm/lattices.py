"""Periodic supercells of simple lattices, built from ASE structures.

A :class:`Lattice` is a periodic supercell ``repeats`` times a primitive cell. Sites are ordered
as ASE's ``Atoms.repeat`` orders them, whole primitive cells at a time:
``index = ((i1 * n2 + i2) * n3 + i3) * n_basis + b``. For the square lattice this is row-major order
``i * L + j``, the raster order of a fixed-order autoregressive model.

Configurations are integer arrays of species indices, ``x[i] in {0, ..., K-1}``; for binary
systems the spin is ``s = 2 x - 1`` (x = 1 is spin up, or Au for CuAu).
"""

from __future__ import annotations

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


class LatticeError(LatthermError):
    """Raised for an unknown lattice kind, a bad supercell shape or a mismatched configuration."""


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
        self.atoms = self.primitive.repeat(self.repeats)

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
        """
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
        """The first ``n_shells`` distinct neighbour distances (excluding 0)."""
        distances = self.distances[self.distances > _DISTANCE_TOL]
        # Group by rounded value, but return an exact member of each group.
        _, first = np.unique(np.round(distances, 6), return_index=True)
        d = distances[first]
        if len(d) < n_shells:
            raise LatticeError(f"supercell {self.repeats} has only {len(d)} neighbour shells")
        return d[:n_shells]

    def neighbour_pairs(self, shell: int = 1) -> np.ndarray:
        """Unique site pairs (i < j) at the ``shell``-th neighbour distance, shape (M, 2).

        In a supercell so small that a neighbour is reached through two periodic images, the
        pair is listed once per image (the bond appears twice in the periodic Hamiltonian),
        which is what the infinite-lattice sum gives, e.g. the L = 2 square Ising model.
        """
        target = self.shell_distances(shell)[shell - 1]
        return self._bonds_at(target)

    def neighbour_table(self, shell: int = 1) -> np.ndarray:
        """For each site, its neighbours in the given shell, shape (N, z), with repetitions
        where periodic images coincide, so that sums over the table equal lattice sums."""
        pairs = self.neighbour_pairs(shell)
        z = 2 * len(pairs) // self.n_sites
        table: list[list[int]] = [[] for _ in range(self.n_sites)]
        for i, j in pairs:
            table[i].append(j)
            table[j].append(i)
        if any(len(row) != z for row in table):
            raise LatticeError("sites have unequal coordination; the lattice is not uniform")
        return np.asarray(table, dtype=np.int64)

    def _bonds_at(self, target: float) -> np.ndarray:
        """All bonds of length ``target`` counted over periodic images (i <= j pairs)."""
        frac = self.fractional
        reach = int(np.ceil(target / np.min(self._plane_spacings()))) + 1
        rng = [range(-reach, reach + 1) if p else range(0, 1) for p in self.atoms.pbc]
        shifts = np.array([(i, j, k) for i in rng[0] for j in rng[1] for k in rng[2]], dtype=float)
        pairs = []
        for t in shifts:
            vec = (frac[None, :, :] - frac[:, None, :] + t) @ self.cell
            dist = np.linalg.norm(vec, axis=-1)
            ii, jj = np.nonzero(np.abs(dist - target) < 1e-4)
            pairs.append(np.stack([ii, jj], axis=1))
        allpairs = np.concatenate(pairs)
        # Each bond i->j through image t appears also as j->i through -t: keep one direction.
        keep = allpairs[:, 0] < allpairs[:, 1]
        self_bonds = allpairs[allpairs[:, 0] == allpairs[:, 1]]
        both = np.concatenate([allpairs[keep], self_bonds[: len(self_bonds) // 2]])
        order = np.lexsort((both[:, 1], both[:, 0]))
        return both[order].astype(np.int64)

    def _plane_spacings(self) -> np.ndarray:
        recip = np.linalg.inv(self.cell).T
        return 1.0 / np.linalg.norm(recip, axis=1)

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


MAX_SITES = 4096
"""Most sites a system may have: the lattice geometry (minimum-image displacements, used by the spin
models and the Transformer) holds dense N x N x 27 x 3 arrays; 64 x 64 Ising, 4096 sites, takes about
10 GB and 50 s to build on a 2-core machine with 23 GB, and memory grows as N^2."""

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
