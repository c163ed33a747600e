"""Variance-constrained semi-grand canonical (VCSGC) scans on the batched torch MCMC.

The VCSGC ensemble (Sadigh & Erhart, PRB 86, 134204 (2012); mchammer's ``VCSGCEnsemble``)
weighs a configuration by exp(-beta E - kappa N (c + phi / 2)^2), c the fraction of species 1:
a large kappa pins c near -phi / 2, also inside a miscibility gap, where semi-grand scans jump
across. The trial step is :class:`lattherm.mcmc.moves.VarianceConstrainedFlip`, run by
:func:`lattherm.mcmc.samplers.run_chains` with a phi per chain, and neighbouring phis exchange
configurations after every sweep (replica exchange at one temperature: the energy cancels,
accepted with min(1, exp(kappa (n_a - n_b) (phi_a - phi_b))), n the species-1 counts), so a
configuration trapped in one arrangement of ordered domains can leave it through the other phis.
Exchanges are accepted often where neighbouring phis hold similar n (an ordered phase's plateau),
rarely where F(c) is flat and they differ by several sites (the default scan: median 0.7 % per pair).

F(c) of a phi scan at one temperature (:func:`vcsgc_free_energy`): the weight of window k is the
canonical one, Z_n, times the known bias exp(-kappa N (n / N + phi_k / 2)^2), so the composition
histograms of all windows reweighted together (WHAM in n, which is MBAR here since the bias
depends on n alone) give Z_n and F_n = -k_B T ln Z_n up to one constant, with no slope
approximation: exact also at the cusps of F at ordered compositions, where the classic estimator
d(F/N)/dc = -2 kappa k_B T (<c> + phi / 2) (:func:`vcsgc_free_energy_derivative`, still reported per
phi) is biased by O(1/N).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import logsumexp

from lattherm import K_B_EV
from lattherm.ce.storage import ce_species, check_lattice, parent_lattice, read_cluster_expansion
from lattherm.errors import LatthermError
from lattherm.hamiltonians.base import Hamiltonian
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice, size_tag
from lattherm.mcmc.moves import VarianceConstrainedFlip
from lattherm.mcmc.samplers import run_chains, summarize_chains
from lattherm.observables import Observable, composition, standard_observables


HISTOGRAM_COLUMNS = ("temperature", "beta", "phi", "kappa", "n_sites", "chain", "n_ones", "count")


def vcsgc_scan(hamiltonian: Hamiltonian, beta: float, phis: Sequence[float], kappa: float, n_chains: int,
               n_sweeps: int, burn_in: int = 0, temperature: float | None = None, seed: int = 0,
               observables: Mapping[str, Observable] | None = None, progress: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A variance-constrained semi-grand (VCSGC) scan at one inverse temperature: ``n_chains``
    chains at each of ``phis`` (with one ``kappa``), all in one batch of
    :class:`~lattherm.mcmc.moves.VarianceConstrainedFlip` sweeps from random starts, with replica
    exchange between neighbouring phis after every sweep (chain r of one phi with chain r of the
    next: the chains r of all phis form one ladder, independent of the others).

    Returns (table, histograms). The table has one tidy row per phi, by decreasing phi (rising
    <c>), as :func:`~lattherm.mcmc.samplers.summarize_chains` (energy is the Hamiltonian's,
    ``composition`` <c> with its error and ``composition_std`` the spread of c, the observables),
    without its heat capacity (beta^2 var(E) is not the canonical one here), and
    ``phi_exchange_acceptance`` (of the exchanges with the next row's phi; NaN on the last) and
    ``round_trips`` (of all walkers between the first and the last phi); ``temperature`` labels
    the rows (:func:`vcsgc_derivatives` adds d(F/N)/dc). The histograms count the species-1
    number n of every record kept in the table (after the equilibration prefix), one tidy row
    per (phi, chain, n) seen (:data:`HISTOGRAM_COLUMNS`): what :func:`vcsgc_free_energy` needs."""
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
    observables.setdefault("composition", composition)  # <c> and the histograms
    phis = np.sort(phis)[::-1]  # neighbouring rungs are neighbouring phis
    phi_rows = torch.as_tensor(np.repeat(phis, n_chains), device=hamiltonian.device)
    move = VarianceConstrainedFlip(hamiltonian, phi_rows, kappa)
    result = run_chains(hamiltonian, np.full(len(phis), beta), n_chains, n_sweeps, move=move, burn_in=burn_in,
                        seed=seed, observables=observables, progress=progress, exchange=len(phis) > 1)
    labels = None if temperature is None else [temperature] * len(phis)
    n_sites = hamiltonian.n_sites
    table = summarize_chains(result, n_sites, labels)
    table = table.drop(columns=[c for c in table.columns if c.startswith("heat_capacity")])
    kept = [result.series["composition"][result.group == k][:, t0:] for k, t0 in enumerate(table.n_discarded)]
    # the spread of c itself (not of its mean): whether the composition distribution reaches c = 0 or 1
    table["composition_std"] = [float(c.std()) for c in kept]
    table.insert(2, "phi", phis)
    table.insert(3, "kappa", float(kappa))
    acceptance = table.pop("exchange_acceptance_up") if len(phis) > 1 else math.nan
    table["phi_exchange_acceptance"] = acceptance
    table["round_trips"] = result.round_trips or 0
    table["n_sites"] = n_sites
    rows = []
    for phi, c in zip(phis, kept):
        counts = np.stack([np.bincount(np.rint(chain * n_sites).astype(np.int64), minlength=n_sites + 1)
                           for chain in c])  # (chains, N + 1)
        chain, n_ones = np.nonzero(counts)
        rows.append(pd.DataFrame({"phi": phi, "chain": chain, "n_ones": n_ones, "count": counts[chain, n_ones]}))
    histograms = pd.concat(rows, ignore_index=True)
    histograms.insert(0, "temperature", math.nan if temperature is None else float(temperature))
    histograms.insert(1, "beta", float(beta))
    histograms.insert(3, "kappa", float(kappa))
    histograms.insert(4, "n_sites", n_sites)
    return table, histograms[list(HISTOGRAM_COLUMNS)]


def alloy_vcsgc_scan(alloy: str, ce_file, lattice_kind: str, size: Sequence[int], temperature: float,
                     phis: Sequence[float], kappa: float, chains: int, sweeps: int, burn_in: int, seed: int = 0,
                     progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A VCSGC phi scan of ``alloy``'s CE in ``ce_file`` on the ``lattice_kind`` cell ``size`` (with the
    CE's lattice constant) at one ``temperature`` (K): :func:`vcsgc_scan` with ``chains`` chains
    per phi from random starts, neighbouring phis exchanging configurations, then
    :func:`vcsgc_derivatives`. Returns the table, one tidy row per phi (decreasing): alloy, cell, T,
    phi, kappa, <c>, <E>, the order parameters, d(F/N)/dc with errors, the phi-exchange acceptance
    and round trips; and the composition histograms, labelled alike, for :func:`vcsgc_free_energy`."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise LatthermError(f"the VCSGC temperature must be a finite positive number of kelvin, got {temperature}")
    ce = read_cluster_expansion(ce_file)
    lattice = make_lattice(lattice_kind, size, a=parent_lattice(ce)[1])
    check_lattice(ce, lattice, ce_file)
    hamiltonian = ClusterExpansionHamiltonian(ce, lattice, species=tuple(ce_species(ce)))
    table, histograms = vcsgc_scan(hamiltonian, 1.0 / (K_B_EV * temperature), phis, kappa, chains, sweeps,
                                   burn_in=burn_in, temperature=temperature, seed=seed,
                                   observables=standard_observables(lattice), progress=progress)
    table = vcsgc_derivatives(table, f"the VCSGC scan at {temperature} K")
    labels = {"alloy": alloy, "ensemble": "vcsgc", "lattice": lattice_kind, "size": size_tag(size)}
    for i, (name, value) in enumerate(labels.items()):
        table.insert(i, name, value)
        histograms.insert(i, name, value)
    return table, histograms


# -- d(F/N)/dc per phi -----------------------------------------------------------------------------
VCSGC_COLUMNS = ("beta", "phi", "kappa", "composition", "composition_err", "composition_std")
BOUNDARY_CLEARANCE = 3.0  # standard deviations of c between <c> and c = 0 or 1 for the estimator to hold


def vcsgc_free_energy_derivative(composition, phi, kappa: float, beta: float):
    """d(F/N)/dc at c = <c> from a VCSGC average (Sadigh & Erhart, PRB 86, 134204 (2012); mchammer's
    ``free_energy_derivative``): -2 kappa k_B T (<c> + phi / 2), in the energy unit of 1 / beta.

    The weight exp(-beta F(c) - kappa N (c + phi / 2)^2) of a composition peaks where
    beta d(F/N)/dc = -2 kappa (c + phi / 2); <c> sits there up to O(1 / N) (the skew of the peak:
    a few percent of k_B T on 16 sites, tests/test_vcsgc.py), provided the peak lies clear of
    c = 0 and 1, and F has no cusp within the peak."""
    return -2.0 * kappa / beta * (np.asarray(composition, dtype=np.float64) + 0.5 * np.asarray(phi, dtype=np.float64))


def vcsgc_derivatives(data: pd.DataFrame, source: str) -> pd.DataFrame:
    """A VCSGC phi scan at one temperature and kappa (one row per phi: ``beta``, ``phi``,
    ``kappa``, ``composition`` = <c> with ``composition_err``, from separate chains, and
    ``composition_std`` the spread of c) with d(F/N)/dc, rows sorted by decreasing phi, along
    which <c> rises (d<c>/dphi = -kappa N var(c) < 0):

    * ``interior``: <c> lies more than :data:`BOUNDARY_CLEARANCE` spreads from c = 0 and 1, so
      the composition distribution is a whole peak and the estimator holds; elsewhere (e.g. a
      scan's ends, pinned at a pure element) the columns below are NaN.
    * ``free_energy_derivative_per_site``: d(F/N)/dc at <c> (:func:`vcsgc_free_energy_derivative`)
      with its error 2 kappa k_B T sigma_c.
    """
    _check_numeric_columns(data, VCSGC_COLUMNS, f"table {source}")
    beta, kappa = (_single_positive(data, column, source) for column in ("beta", "kappa"))
    if data.phi.duplicated().any() or not np.all(np.isfinite(data.phi)):
        raise LatthermError(f"table {source} must hold distinct finite phi values, got {data.phi.tolist()}")
    data = data.sort_values("phi", ascending=False).reset_index(drop=True)
    clearance = BOUNDARY_CLEARANCE * data.composition_std
    interior = ((data.composition - clearance > 0) & (data.composition + clearance < 1)).to_numpy()
    result = data.copy()
    result["interior"] = interior
    result["free_energy_derivative_per_site"] = np.where(
        interior, vcsgc_free_energy_derivative(data.composition, data.phi, kappa, beta), np.nan)
    result["free_energy_derivative_per_site_err"] = np.where(interior, 2.0 * kappa / beta * data.composition_err,
                                                             np.nan)
    return result


def _check_numeric_columns(data: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise LatthermError(f"{what} lacks column(s) {missing}")
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(data[c])]
    if text:
        raise LatthermError(f"{what} has non-numeric column(s) {text}")


def _single_positive(data: pd.DataFrame, column: str, source: str) -> float:
    values = data[column].unique()
    if len(values) != 1 or not (np.isfinite(values[0]) and values[0] > 0):
        raise LatthermError(f"table {source} must hold one positive {column}, got {values.tolist()}")
    return float(values[0])


# -- F(c) by reweighting the composition histograms of all windows ------------------------------
def _wham_log_z(counts: np.ndarray, bias: np.ndarray, source: str) -> np.ndarray:
    """ln Z_n up to a constant (-inf where no window saw n) from window histograms ``counts``
    (K, N + 1) with reduced biases ``bias`` (K, N + 1): the MBAR equations for a bias that
    depends on n alone, solved by Newton's method on their convex objective."""
    m = counts.sum(axis=1)
    h = counts.sum(axis=0)
    seen = h > 0
    shared = coo_matrix(counts[:, seen] > 0)
    graph = coo_matrix((np.ones(shared.nnz), (shared.row, len(m) + shared.col)),
                       shape=(len(m) + seen.sum(),) * 2)
    if connected_components(graph, directed=False)[0] != 1:
        raise LatthermError(f"{source}: the composition histograms of neighbouring phis do not overlap (some "
                            "window shares no composition with the others), so F(c) cannot be joined across them; "
                            "use more phis (vcsgc_phi_count) or a smaller vcsgc_kappa")
    b, h = bias[:, seen], h[seen]
    log_m = np.log(m)

    def parts(g):
        f = np.concatenate([[0.0], g])  # f_k = -ln Z_k of the windows, f_0 = 0 fixes the constant
        a = log_m[:, None] + f[:, None] - b
        log_den = logsumexp(a, axis=0)
        w = np.exp(a - log_den)
        return f, log_den, w

    def objective(g):
        f, log_den, w = parts(g)
        return float(h @ log_den - m @ f), (w @ h - m)[1:]

    def hessian(g):
        _, _, w = parts(g)
        return (np.diag(w @ h) - (w * h) @ w.T)[1:, 1:]

    solution = minimize(objective, np.zeros(len(m) - 1), jac=True, hess=hessian, method="trust-exact",
                        options={"gtol": 1e-9})
    # the gradient is each window's count minus its predicted count; trust-exact may stop at the
    # rounding floor with success False, so the residual itself decides
    residual = np.abs(objective(solution.x)[1]).max() / m.sum()
    if residual > 1e-6:  # a millionth of the records: far below any statistical error
        raise LatthermError(f"{source}: reweighting the composition histograms did not converge (count residual "
                            f"{residual:.1e} of all records; {solution.message})")
    _, log_den, _ = parts(solution.x)
    log_z = np.full(counts.shape[1], -np.inf)
    log_z[seen] = np.log(h) - log_den
    return log_z


def vcsgc_free_energy(histograms: pd.DataFrame, source: str) -> pd.DataFrame:
    """F(c)/N of a VCSGC phi scan at one temperature from its composition histograms
    (:data:`HISTOGRAM_COLUMNS`, as :func:`vcsgc_scan` gives them), by reweighting all windows
    together (WHAM in n: exact for the VCSGC bias, which depends on n alone).

    One tidy row per composition c = n / N seen by every chain ladder: temperature,
    composition, n_ones, ``free_energy_per_site`` F_n / N up to one constant (zero mean over the
    rows), ``free_energy_per_site_err`` and ``count`` (records at n, all windows), n_sites. The
    error is the jackknife over the ladders (chain r of every phi: independent of the other
    ladders, so it holds every correlation in time and through the exchanges), each jackknife
    estimate shifted to the same zero mean: the error of F up to a constant."""
    _check_numeric_columns(histograms, HISTOGRAM_COLUMNS, f"histograms {source}")
    beta, kappa, temperature = (_single_positive(histograms, c, source) for c in ("beta", "kappa", "temperature"))
    n_sites = _single_positive(histograms, "n_sites", source)
    if not n_sites.is_integer():
        raise LatthermError(f"histograms {source} have n_sites = {n_sites}; expected a whole number")
    n_sites = int(n_sites)
    if (histograms["count"] < 0).any() or not histograms.n_ones.between(0, n_sites).all():
        raise LatthermError(f"histograms {source} need counts >= 0 and n_ones in [0, {n_sites}]")
    phis = np.sort(histograms.phi.unique())[::-1]
    chains = np.sort(histograms.chain.unique())
    if len(chains) < 2:
        raise LatthermError(f"histograms {source} hold {len(chains)} chain(s) per phi; the error needs two or more")
    counts = np.zeros((len(chains), len(phis), n_sites + 1))
    np.add.at(counts, (np.searchsorted(chains, histograms.chain), np.searchsorted(-phis, -histograms.phi),
                       histograms.n_ones.to_numpy(np.int64)), histograms["count"].to_numpy(np.float64))
    n = np.arange(n_sites + 1)
    bias = kappa * n_sites * (n[None, :] / n_sites + phis[:, None] / 2) ** 2
    if (counts.sum(axis=2) == 0).any():
        raise LatthermError(f"histograms {source}: some (phi, chain) has no records; every chain of every phi "
                            "needs some")
    estimates = [_wham_log_z(counts.sum(axis=0), bias, source)]
    estimates += [_wham_log_z(counts.sum(axis=0) - counts[r], bias, f"{source} without chain {chains[r]}")
                  for r in range(len(chains))]
    # n that every ladder saw: each jackknife estimate has them, and the error holds (the rare n at a
    # scan's ends or deep in a gap, seen by few ladders, have noisy F that would fake hull gaps)
    rows = np.all(counts.sum(axis=1) > 0, axis=0)
    free = -np.array(estimates)[:, rows] / (beta * n_sites)
    free -= free.mean(axis=1, keepdims=True)
    jack = free[1:]
    error = np.sqrt((len(chains) - 1) / len(chains) * ((jack - jack.mean(axis=0)) ** 2).sum(axis=0))
    return pd.DataFrame({"temperature": temperature, "composition": n[rows] / n_sites, "n_ones": n[rows],
                         "free_energy_per_site": free[0], "free_energy_per_site_err": error,
                         "count": counts.sum(axis=(0, 1))[rows].astype(np.int64), "n_sites": n_sites})
