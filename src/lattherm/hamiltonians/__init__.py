"""Batched torch Hamiltonians: (B, N) species indices -> (B,) float64 total energies."""

from lattherm.hamiltonians.base import Hamiltonian, SemiGrand
from lattherm.hamiltonians.ising import EdwardsAnderson, Ising, SherringtonKirkpatrick

__all__ = ["EdwardsAnderson", "Hamiltonian", "Ising", "SemiGrand", "SherringtonKirkpatrick"]
