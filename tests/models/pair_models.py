"""A pair Hamiltonian for the model tests: random couplings on the nearest-neighbour bonds and a
field, no symmetry to hide behind (pytest puts this folder on sys.path)."""

import numpy as np

from lattherm.hamiltonians.ising import BondIsing


class RandomBonds(BondIsing):
    def identity(self) -> dict:
        return {"model": "random_bonds"}


def random_bonds(lattice, seed: int = 0, h: float = 0.3) -> RandomBonds:
    """Normal(0, 1) couplings on the nearest-neighbour bonds of ``lattice`` (from ``seed``), field ``h``."""
    bonds = lattice.neighbour_pairs(1)
    return RandomBonds(bonds, np.random.default_rng(seed).normal(0.0, 1.0, len(bonds)), lattice.n_sites, h=h)
