"""lattherm: thermodynamics of lattice models from neural samplers and MCMC."""

__version__ = "0.1.0"

K_B_EV = 8.617333262e-5
"""Boltzmann constant in eV/K (CODATA 2018), the unit mchammer uses."""
