"""Exact references, chosen by capability: Kaufman's solution for the zero-field square-lattice
Ising model (any J, any size), brute-force enumeration for cells small enough."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lattherm.errors import LatthermError
from lattherm.exact.enumeration import MAX_SITES as MAX_ENUMERATED_SITES
from lattherm.exact.enumeration import exact_thermo
from lattherm.exact.kaufman import ising_thermo
from lattherm.lattices import size_tag


def reference_method(config, size: list[int], enumerate_max_sites: int) -> str | None:
    """``kaufman``, ``enumeration`` or None (no exact answer: MCMC is the reference)."""
    if (config.model == "ising" and config.lattice == "square" and config.h == 0 and config.J > 0
            and config.ensemble == "semi_grand" and not config.dmu):
        return "kaufman"
    if config.n_sites(size) <= min(enumerate_max_sites, MAX_ENUMERATED_SITES):
        return "enumeration"
    return None


def reference_temperatures(config) -> list[float]:
    """Every temperature a system is evaluated or scanned at, ascending."""
    return sorted(set(config.temperatures) | set(config.mcmc.temperatures if config.mcmc else []))


def reference_table(system, enumerate_max_sites: int = MAX_ENUMERATED_SITES) -> pd.DataFrame:
    """The exact thermodynamics of ``system`` at :func:`reference_temperatures`, one row each."""
    config = system.config
    method = reference_method(config, system.size, enumerate_max_sites)
    if method is None:
        raise LatthermError(f"system {system.name!r} on the {size_tag(system.size)} cell ({system.n_sites} sites) has "
                            f"no exact reference: Kaufman needs a zero-field ferromagnetic square Ising model, enumeration "
                            f"at most {min(enumerate_max_sites, MAX_ENUMERATED_SITES)} sites")
    temperatures = reference_temperatures(config)
    if not temperatures:
        raise LatthermError(f"system {system.name!r} has no temperatures: its temperatures and mcmc.temperatures "
                            "are both empty")
    betas = np.array([system.beta(t) for t in temperatures])
    if method == "kaufman":
        table = ising_thermo(system.size[0], system.size[1], betas, J=config.J)
    else:
        table = exact_thermo(system.hamiltonian, betas, n_ones=system.n_ones)
    table["temperature"] = temperatures  # in the system's unit (kelvin for an alloy), not 1 / beta
    table.insert(0, "system", system.name)
    table.insert(1, "method", method)
    table.insert(2, "size", size_tag(system.size))
    table.insert(3, "ensemble", system.ensemble)
    return table
