"""Variance-constrained semi-grand canonical (VCSGC) scans on the batched torch MCMC.

The VCSGC ensemble (Sadigh & Erhart, PRB 86, 134204 (2012); mchammer's ``VCSGCEnsemble``)
weighs a configuration by exp(-beta E - kappa N (c + phi / 2)^2), c the fraction of species 1:
a large kappa pins c near -phi / 2, also inside a miscibility gap, where semi-grand scans jump
across. A phi scan at one temperature gives d(F/N)/dc at each <c> and F(c) by integration
(:func:`lattherm.mcmc.integration.vcsgc_free_energies`). The trial step is
:class:`lattherm.mcmc.moves.VarianceConstrainedFlip`, run by :func:`lattherm.mcmc.samplers.run_chains`
with a phi per chain, and neighbouring phis exchange configurations after every sweep (replica
exchange at one temperature: the energy cancels, accepted with
min(1, exp(kappa (n_a - n_b) (phi_a - phi_b))), n the species-1 counts), so a configuration
trapped in one arrangement of ordered domains can leave it through the other phis. Exchanges are
accepted often where neighbouring phis hold similar n (an ordered phase's plateau), rarely where
F(c) is flat and they differ by several sites (the default scan: median 0.7 % per pair).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lattherm import K_B_EV
from lattherm.ce.storage import ce_species, check_lattice, parent_lattice, read_cluster_expansion
from lattherm.errors import LatthermError
from lattherm.hamiltonians.base import Hamiltonian
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice, size_tag
from lattherm.mcmc.integration import vcsgc_free_energies
from lattherm.mcmc.moves import VarianceConstrainedFlip
from lattherm.mcmc.samplers import run_chains, summarize_chains
from lattherm.observables import Observable, composition, standard_observables


def vcsgc_scan(hamiltonian: Hamiltonian, beta: float, phis: Sequence[float], kappa: float, n_chains: int,
               n_sweeps: int, burn_in: int = 0, temperature: float | None = None, seed: int = 0,
               observables: Mapping[str, Observable] | None = None, progress: bool = True) -> pd.DataFrame:
    """A variance-constrained semi-grand (VCSGC) scan at one inverse temperature: ``n_chains``
    chains at each of ``phis`` (with one ``kappa``), all in one batch of
    :class:`~lattherm.mcmc.moves.VarianceConstrainedFlip` sweeps from random starts, with replica
    exchange between neighbouring phis after every sweep. One tidy row per phi, by decreasing phi
    (rising <c>), as :func:`~lattherm.mcmc.samplers.summarize_chains` (energy is the
    Hamiltonian's, ``composition`` <c> with its error and ``composition_std`` the spread of c, the
    observables), without its heat capacity (beta^2 var(E) is not the canonical one here), and
    ``phi_exchange_acceptance`` (of the exchanges with the next row's phi; NaN on the last) and
    ``round_trips`` (of all walkers between the first and the last phi); ``temperature`` labels
    the rows. :func:`lattherm.mcmc.integration.vcsgc_free_energies` turns the table into dF/dc
    and F(c)."""
    phis = np.atleast_1d(np.asarray(phis, dtype=np.float64))
    if phis.ndim != 1 or len(phis) == 0 or not np.all(np.isfinite(phis)) or len(np.unique(phis)) != len(phis):
        raise LatthermError(f"phis must be distinct finite numbers, got {phis.tolist()}")
    if not (math.isfinite(kappa) and kappa > 0):
        raise LatthermError(f"kappa must be a finite positive number, got {kappa!r}")
    if not (math.isfinite(beta) and beta > 0):
        raise LatthermError(f"beta must be a finite positive number, got {beta!r}")
    if n_sweeps - burn_in < 128:  # up to half is discarded as equilibration, and blocking needs 64 samples per chain
        raise LatthermError(f"a VCSGC scan needs at least 128 recorded sweeps per chain, got {n_sweeps - burn_in}")
    observables = dict(standard_observables() if observables is None else observables)
    observables.setdefault("composition", composition)  # the estimator's <c>
    phis = np.sort(phis)[::-1]  # neighbouring rungs are neighbouring phis
    phi_rows = torch.as_tensor(np.repeat(phis, n_chains), device=hamiltonian.device)
    move = VarianceConstrainedFlip(hamiltonian, phi_rows, kappa)
    result = run_chains(hamiltonian, np.full(len(phis), beta), n_chains, n_sweeps, move=move, burn_in=burn_in,
                        seed=seed, observables=observables, progress=progress, exchange=len(phis) > 1)
    labels = None if temperature is None else [temperature] * len(phis)
    table = summarize_chains(result, hamiltonian.n_sites, labels)
    table = table.drop(columns=[c for c in table.columns if c.startswith("heat_capacity")])
    # the spread of c itself (not of its mean): whether the composition distribution reaches c = 0 or 1
    table["composition_std"] = [float(result.series["composition"][result.group == k][:, t0:].std())
                                for k, t0 in enumerate(table.n_discarded)]
    table.insert(2, "phi", phis)
    table.insert(3, "kappa", float(kappa))
    acceptance = table.pop("exchange_acceptance_up") if len(phis) > 1 else math.nan
    table["phi_exchange_acceptance"] = acceptance
    table["round_trips"] = result.round_trips or 0
    table["n_sites"] = hamiltonian.n_sites
    return table


def alloy_vcsgc_scan(alloy: str, ce_file, lattice_kind: str, size: Sequence[int], temperature: float,
                     phis: Sequence[float], kappa: float, chains: int, sweeps: int, burn_in: int, seed: int = 0,
                     progress: bool = True) -> pd.DataFrame:
    """A VCSGC phi scan of ``alloy``'s CE in ``ce_file`` on the ``lattice_kind`` cell ``size`` (with the
    CE's lattice constant) at one ``temperature`` (K): :func:`vcsgc_scan` with ``chains`` chains
    per phi from random starts, neighbouring phis exchanging configurations, then
    :func:`lattherm.mcmc.integration.vcsgc_free_energies`. One tidy row per phi (decreasing):
    alloy, cell, T, phi, kappa, <c>, <E>, the order parameters, d(F/N)/dc and F(<c>)/N relative to
    the first row, all with errors, and the phi-exchange acceptance and round trips."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise LatthermError(f"the VCSGC temperature must be a finite positive number of kelvin, got {temperature}")
    ce = read_cluster_expansion(ce_file)
    lattice = make_lattice(lattice_kind, size, a=parent_lattice(ce)[1])
    check_lattice(ce, lattice, ce_file)
    hamiltonian = ClusterExpansionHamiltonian(ce, lattice, species=tuple(ce_species(ce)))
    table = vcsgc_scan(hamiltonian, 1.0 / (K_B_EV * temperature), phis, kappa, chains, sweeps, burn_in=burn_in,
                       temperature=temperature, seed=seed, observables=standard_observables(lattice),
                       progress=progress)
    table = vcsgc_free_energies(table, f"the VCSGC scan at {temperature} K")
    labels = {"alloy": alloy, "ensemble": "vcsgc", "lattice": lattice_kind, "size": size_tag(size)}
    for i, (name, value) in enumerate(labels.items()):
        table.insert(i, name, value)
    return table
