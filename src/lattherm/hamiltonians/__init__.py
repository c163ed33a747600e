"""Batched torch Hamiltonians: (B, N) species indices -> (B,) float64 total energies."""

from lattherm.hamiltonians.base import Hamiltonian, SemiGrand

__all__ = ["Hamiltonian", "SemiGrand"]
