"""Ising-type spin Hamiltonians: ferromagnet, Edwards-Anderson and Sherrington-Kirkpatrick glasses.

All share one pair form E(s) = -sum_b J_b s_i(b) s_j(b) - h sum_i s_i with s = 2x - 1.
Lattice models keep their bonds as a (M, 2) buffer and, for O(z) local moves, a neighbour
table (N, z) with the coupling of each table entry. A bond that a tiny supercell reaches
through two periodic images (L = 2) is listed twice, as in the infinite-lattice sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lattherm.hamiltonians.base import Hamiltonian
from lattherm.lattices import Lattice


def _neighbour_tables(bonds: np.ndarray, couplings: np.ndarray, n_sites: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-site neighbour indices and the coupling of each entry, both (N, z).

    Row i lists, in bond order, the other end of every bond at i (a self-bond (i, i) twice),
    vectorised: O(M log M) for M bonds."""
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    ends = bonds.ravel()  # bond k contributes to row i (partner j), then to row j (partner i)
    partners = bonds[:, ::-1].ravel()
    order = np.argsort(ends, kind="stable")
    counts = np.bincount(ends, minlength=n_sites)
    z = set(counts.tolist())
    if len(z) != 1:
        raise ValueError(f"sites have unequal coordination {sorted(z)}; expected a uniform lattice")
    z = z.pop()
    neighbours = partners[order].reshape(n_sites, z)
    coupling = np.repeat(np.asarray(couplings, dtype=np.float64), 2)[order].reshape(n_sites, z)
    return neighbours, coupling


class BondIsing(Hamiltonian):
    """E = -sum_b J_b s_i s_j - h sum_i s_i over an explicit list of bonds (i, j).

    Subclasses choose the bonds and couplings; energies and local moves live here.
    """

    def __init__(self, bonds: np.ndarray, couplings: np.ndarray, n_sites: int, h: float = 0.0):
        super().__init__(n_sites)
        bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
        couplings = np.asarray(couplings, dtype=np.float64)
        if couplings.shape != (len(bonds),):
            raise ValueError(f"need one coupling per bond: {len(bonds)} bonds, couplings {couplings.shape}")
        if not np.isfinite(h):
            raise ValueError(f"field h must be finite, got {h}")
        self.h = float(h)
        neighbours, neighbour_couplings = _neighbour_tables(bonds, couplings, n_sites)
        self.register_buffer("bonds", torch.as_tensor(bonds))
        self.register_buffer("couplings", torch.as_tensor(couplings))
        self.register_buffer("neighbours", torch.as_tensor(neighbours))
        self.register_buffer("neighbour_couplings", torch.as_tensor(neighbour_couplings))

    def energy(self, x: Tensor) -> Tensor:
        s = self.check_input(x)
        bond_terms = s[:, self.bonds[:, 0]] * s[:, self.bonds[:, 1]]
        return -(bond_terms @ self.couplings) - self.h * s.sum(dim=1)

    def local_field(self, s: Tensor, sites: Tensor) -> Tensor:
        """sum_k J_ik s_k + h at site ``sites[b]`` of each spin configuration s (B, N) -> (B,)."""
        rows = torch.arange(s.shape[0], device=s.device)[:, None]
        return (s[rows, self.neighbours[sites]] * self.neighbour_couplings[sites]).sum(dim=1) + self.h

    def flip_delta(self, x: Tensor, sites: Tensor) -> Tensor:
        s = self.check_input(x)
        rows = torch.arange(s.shape[0], device=s.device)
        return 2.0 * s[rows, sites] * self.local_field(s, sites)

    def flip_deltas(self, x: Tensor, sites: Tensor) -> Tensor:
        """The energy change of flipping each of ``sites`` (K,) alone, on every configuration:
        (B, K), in O(B K z) (the colour-class sweeps of :class:`lattherm.mcmc.moves.Flip`)."""
        s = self.check_input(x)
        field = (s[:, self.neighbours[sites]] * self.neighbour_couplings[sites]).sum(dim=2) + self.h
        return 2.0 * s[:, sites] * field

    def swap_delta(self, x: Tensor, i: Tensor, j: Tensor) -> Tensor:
        # Exchanging unlike spins is flipping both; bonds between i and j are then unchanged, so
        # remove their contribution from the two single-flip terms (-2 J_ij s_i s_j each).
        s = self.check_input(x)
        rows = torch.arange(s.shape[0], device=s.device)
        si, sj = s[rows, i], s[rows, j]
        j_between = (self.neighbour_couplings[i] * (self.neighbours[i] == j[:, None])).sum(dim=1)
        both = 2.0 * si * self.local_field(s, i) + 2.0 * sj * self.local_field(s, j) - 4.0 * j_between * si * sj
        return torch.where(si != sj, both, torch.zeros_like(both))


class Ising(BondIsing):
    """Nearest-neighbour Ising model E = -J sum_<ij> s_i s_j - h sum_i s_i on any lattice.

    ``neighbours`` (N, z) is the nearest-neighbour table (cluster samplers use it).
    """

    def __init__(self, lattice: Lattice, J: float = 1.0, h: float = 0.0):
        if not np.isfinite(J):
            raise ValueError(f"coupling J must be finite, got {J}")
        bonds = lattice.neighbour_pairs(1)
        super().__init__(bonds, np.full(len(bonds), float(J)), lattice.n_sites, h)
        self.J = float(J)

    def identity(self) -> dict:
        return {"model": "ising", "J": self.J, "h": self.h}


COUPLINGS = ("pm_j", "gaussian")


def draw_couplings(kind: str, count: int, scale: float, seed: int) -> np.ndarray:
    """``count`` couplings of ``numpy.random.default_rng(seed)``: +-scale (``pm_j``) or normal(0, scale^2)."""
    rng = np.random.default_rng(seed)
    if kind == "pm_j":
        return scale * rng.choice([-1.0, 1.0], size=count)
    if kind == "gaussian":
        return rng.normal(0.0, scale, size=count)
    raise ValueError(f"couplings must be one of {COUPLINGS}, got {kind!r}")


class EdwardsAnderson(BondIsing):
    """Edwards-Anderson spin glass on the nearest-neighbour bonds of a square or simple cubic
    lattice, couplings +-1 (``pm_j``) or normal(0, 1) (``gaussian``) drawn once from ``seed``."""

    def __init__(self, lattice: Lattice, seed: int = 0, couplings: str = "pm_j"):
        if lattice.kind not in ("square", "simple_cubic"):
            raise ValueError(f"Edwards-Anderson needs a square or simple_cubic lattice, got {lattice.kind!r}")
        bonds = lattice.neighbour_pairs(1)
        scale = 1.0
        super().__init__(bonds, draw_couplings(couplings, len(bonds), scale, seed), lattice.n_sites)
        self.seed, self.coupling_kind, self.coupling_scale = int(seed), couplings, scale

    def identity(self) -> dict:
        return {"model": "edwards_anderson", "couplings": self.coupling_kind, "seed": self.seed}


MAX_SK_SITES = 8192
"""Largest Sherrington-Kirkpatrick system: its couplings are a dense N x N float64 matrix (8192 sites:
512 MiB, about 1.1 GB peak and 3.5 s to build, bench/results/geometry.json)."""


class SherringtonKirkpatrick(Hamiltonian):
    """All-to-all spin glass E = -sum_{i<j} J_ij s_i s_j with J_ij ~ N(0, 1/N) (``gaussian``) or
    +-1/sqrt(N) (``pm_j``) drawn from ``seed``. ``coupling_matrix`` is symmetric with a zero diagonal."""

    def __init__(self, n_sites: int, seed: int = 0, couplings: str = "gaussian"):
        super().__init__(n_sites)
        if n_sites < 2:
            raise ValueError(f"Sherrington-Kirkpatrick needs at least 2 sites, got {n_sites}")
        scale = 1.0 / np.sqrt(n_sites)
        drawn = draw_couplings(couplings, n_sites * n_sites, scale, seed)
        upper = np.triu(drawn.reshape(n_sites, n_sites), k=1)
        self.seed, self.coupling_kind, self.coupling_scale = int(seed), couplings, float(scale)
        self.register_buffer("coupling_matrix", torch.as_tensor(upper + upper.T))

    def identity(self) -> dict:
        return {"model": "sherrington_kirkpatrick", "couplings": self.coupling_kind, "seed": self.seed,
                "n_sites": self.n_sites}

    def energy(self, x: Tensor) -> Tensor:
        s = self.check_input(x)
        return -0.5 * ((s @ self.coupling_matrix) * s).sum(dim=1)

    def flip_delta(self, x: Tensor, sites: Tensor) -> Tensor:
        s = self.check_input(x)
        rows = torch.arange(s.shape[0], device=s.device)
        field = (self.coupling_matrix[sites] * s).sum(dim=1)
        return 2.0 * s[rows, sites] * field

    def swap_delta(self, x: Tensor, i: Tensor, j: Tensor) -> Tensor:
        s = self.check_input(x)
        rows = torch.arange(s.shape[0], device=s.device)
        si, sj = s[rows, i], s[rows, j]
        fi = (self.coupling_matrix[i] * s).sum(dim=1)
        fj = (self.coupling_matrix[j] * s).sum(dim=1)
        both = 2.0 * si * fi + 2.0 * sj * fj - 4.0 * self.coupling_matrix[i, j] * si * sj
        return torch.where(si != sj, both, torch.zeros_like(both))


@dataclass(frozen=True)
class GaussianBonds:
    """What the energy / link-overlap identity of a Gaussian glass needs: the variance sigma^2
    of its i.i.d. couplings, its number of bonds N_b, and the bonds (M, 2), or None for all
    N (N - 1) / 2 pairs i < j (SK)."""

    variance: float
    n_bonds: int
    bonds: Tensor | None


def gaussian_bonds(hamiltonian) -> GaussianBonds | None:
    """The :class:`GaussianBonds` of an Edwards-Anderson or SK glass with ``gaussian`` couplings
    (EA: sigma^2 = 1 on its nearest-neighbour bonds; SK: sigma^2 = 1/N on every pair). None for
    anything else: +-J couplings (J^2 is the same on every bond, so Gaussian integration by parts,
    the identity's derivation, does not apply), a semi-grand field (its energy is not the bond
    sum), or no random couplings at all."""
    if getattr(hamiltonian, "coupling_kind", None) != "gaussian":
        return None
    variance = float(hamiltonian.coupling_scale) ** 2
    if isinstance(hamiltonian, EdwardsAnderson):
        return GaussianBonds(variance, len(hamiltonian.bonds), hamiltonian.bonds)
    n = hamiltonian.n_sites
    return GaussianBonds(variance, n * (n - 1) // 2, None)
