"""Brute-force thermodynamics of any binary :class:`Hamiltonian` with N <= 24 sites.

All 2^N configurations are enumerated in chunks (configuration k has x_i = bit i of k) and
their energies evaluated by the Hamiltonian itself, in batches. Thermodynamic averages are
taken in log space relative to the lowest energy of the ensemble, so that ln Z, <E> and
C = beta^2 Var E stay accurate from beta = 0 down to deep low temperature.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch
from scipy.special import logsumexp
from tqdm import tqdm

from lattherm.errors import LatthermError
from lattherm.hamiltonians.base import Hamiltonian

MAX_SITES = 24


def _as_betas(betas) -> np.ndarray:
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    if betas.ndim != 1 or not np.all(np.isfinite(betas)) or np.any(betas < 0):
        raise LatthermError(f"betas must be finite and >= 0, got {betas}")
    return betas


def configurations(n_sites: int, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Configurations start..stop-1 as a (stop - start, N) int64 tensor; x_i = bit i of the index."""
    index = torch.arange(start, stop, dtype=torch.int64, device=device)
    return (index[:, None] >> torch.arange(n_sites, device=device)) & 1


def enumerate_energies(hamiltonian: Hamiltonian, chunk_size: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Energies and number of ones of all 2^N configurations, in index order.

    Returns (energies float64 (2^N,), n_ones int64 (2^N,)).
    """
    n = hamiltonian.n_sites
    if n > MAX_SITES:
        raise LatthermError(f"enumeration is limited to N <= {MAX_SITES} sites (2^N configurations); got N = {n}")
    if chunk_size < 1:
        raise LatthermError(f"chunk_size must be positive, got {chunk_size}")
    total = 1 << n
    energies = np.empty(total, dtype=np.float64)
    n_ones = np.empty(total, dtype=np.int64)
    starts = range(0, total, chunk_size)
    with torch.no_grad():
        for start in tqdm(starts, desc=f"enumerating 2^{n}", disable=len(starts) < 16 or not sys.stderr.isatty()):
            stop = min(start + chunk_size, total)
            x = configurations(n, start, stop, hamiltonian.device)
            energies[start:stop] = hamiltonian(x).cpu().numpy()
            n_ones[start:stop] = x.sum(dim=1).cpu().numpy()
    return energies, n_ones


def _moments(energies: np.ndarray, beta: float) -> tuple[float, float, float, np.ndarray]:
    """(ln Z, <E>, Var E, Boltzmann probabilities) of states with the given energies."""
    # Weights relative to the ground energy: the ground states get O(1) weights at any beta.
    e0 = energies.min()
    log_w = -beta * (energies - e0)
    log_z_shifted = logsumexp(log_w)
    p = np.exp(log_w - log_z_shifted)
    p /= p.sum()
    # Pairwise sums (np.sum), not BLAS dots, keep the error O(log n eps). The second pass
    # measures E from the first estimate of <E>, removing the cancellation between e0 and
    # <E - e0> at high temperature; at low temperature E - <E> of the ground states stays exact.
    mean = e0 + np.sum(p * (energies - e0))
    mean += np.sum(p * (energies - mean))
    var = float(np.sum(p * (energies - mean) ** 2))
    return float(log_z_shifted - beta * e0), float(mean), var, p


def _table(betas: np.ndarray, n_sites: int, log_z, energy, var) -> pd.DataFrame:
    log_z, energy, var = (np.asarray(v, dtype=np.float64) for v in (log_z, energy, var))
    with np.errstate(divide="ignore", invalid="ignore"):
        temperature = 1.0 / betas
        # beta -> 0: F = -ln(count) / beta + <E> tends to -inf, or to E itself for a single state.
        free = np.where(betas > 0, -log_z / betas, np.where(log_z > 0, -np.inf, energy))
    heat = betas**2 * var
    return pd.DataFrame({
        "beta": betas,
        "temperature": temperature,
        "log_z": log_z,
        "free_energy": free,
        "free_energy_per_site": free / n_sites,
        "energy": energy,
        "energy_per_site": energy / n_sites,
        "heat_capacity": heat,
        "heat_capacity_per_site": heat / n_sites,
    })


def thermo_from_energies(energies: np.ndarray, n_ones: np.ndarray, n_sites: int, betas,
                         canonical_n_ones: int | None = None) -> pd.DataFrame:
    """Exact thermodynamics from the energies of all configurations.

    Without ``canonical_n_ones`` the sum runs over all configurations (unconstrained, or
    semi-grand when the energies include -dmu sum s); with it, only configurations with exactly
    that many ones enter (canonical ensemble). Columns as :func:`lattherm.exact.kaufman.ising_thermo`
    plus ``n_ones_mean`` and ``concentration`` (mean fraction of species 1; fixed if canonical).
    """
    betas = _as_betas(betas)
    energies = np.asarray(energies, dtype=np.float64)
    n_ones = np.asarray(n_ones)
    if energies.shape != n_ones.shape or energies.ndim != 1:
        raise LatthermError(f"energies {energies.shape} and n_ones {n_ones.shape} must be 1-D of equal length")
    if canonical_n_ones is not None:
        if not 0 <= canonical_n_ones <= n_sites:
            raise LatthermError(f"canonical n_ones must lie in [0, {n_sites}], got {canonical_n_ones}")
        selected = energies[n_ones == canonical_n_ones]
        rows = [_moments(selected, b)[:3] for b in betas]
        table = _table(betas, n_sites, *zip(*rows))
        table["n_ones_mean"] = float(canonical_n_ones)
        table["concentration"] = canonical_n_ones / n_sites
        return table
    log_z, energy, var, ones_mean = [], [], [], []
    for beta in betas:
        lz, e, v, p = _moments(energies, beta)
        log_z.append(lz), energy.append(e), var.append(v)
        ones_mean.append(float(np.sum(p * n_ones)))
    table = _table(betas, n_sites, log_z, energy, var)
    table["n_ones_mean"] = ones_mean
    table["concentration"] = table["n_ones_mean"] / n_sites
    return table


def exact_thermo(hamiltonian: Hamiltonian, betas, n_ones: int | None = None,
                 chunk_size: int = 1 << 16) -> pd.DataFrame:
    """Enumerate ``hamiltonian`` and tabulate its exact thermodynamics at each beta.

    ``n_ones=None``: sum over all 2^N configurations; ``n_ones=n``: canonical ensemble of the
    configurations with exactly n ones. Columns as :func:`thermo_from_energies`.
    """
    betas = _as_betas(betas)
    if n_ones is not None and not 0 <= n_ones <= hamiltonian.n_sites:
        raise LatthermError(f"n_ones must lie in [0, {hamiltonian.n_sites}], got {n_ones}")
    energies, ones = enumerate_energies(hamiltonian, chunk_size)
    return thermo_from_energies(energies, ones, hamiltonian.n_sites, betas, canonical_n_ones=n_ones)


def semi_grand_scan(base_energies: np.ndarray, n_ones: np.ndarray, n_sites: int, betas, dmus) -> pd.DataFrame:
    """Semi-grand thermodynamics at each (dmu, beta) from one enumeration of the base energies.

    Adds -dmu * sum_i s_i = -dmu (2 n_ones - N) to every energy, as :class:`SemiGrand` does;
    ``energy`` and ``free_energy`` are those of the semi-grand Hamiltonian. Long format with a
    leading ``dmu`` column.
    """
    betas = _as_betas(betas)
    dmus = np.atleast_1d(np.asarray(dmus, dtype=np.float64))
    if not np.all(np.isfinite(dmus)):
        raise LatthermError(f"dmus must be finite, got {dmus}")
    magnetization = 2.0 * np.asarray(n_ones, dtype=np.float64) - n_sites
    tables = []
    for dmu in dmus:
        table = thermo_from_energies(np.asarray(base_energies) - dmu * magnetization, n_ones, n_sites, betas)
        table.insert(0, "dmu", dmu)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)



def vcsgc_probabilities(base_energies: np.ndarray, n_ones: np.ndarray, n_sites: int, beta: float, phi: float,
                        kappa: float) -> np.ndarray:
    """Exact probabilities of all configurations in the variance-constrained semi-grand ensemble,
    proportional to exp(-beta E - kappa N (c + phi / 2)^2) with c = n_ones / N (the weight of
    :class:`lattherm.mcmc.moves.VarianceConstrainedFlip` and mchammer's ``VCSGCEnsemble``): the
    enumeration reweighted by composition."""
    if not (np.isfinite(beta) and beta >= 0 and np.isfinite(phi) and np.isfinite(kappa) and kappa > 0):
        raise LatthermError(f"need finite beta >= 0, phi and kappa > 0, got beta={beta}, phi={phi}, kappa={kappa}")
    c = np.asarray(n_ones, dtype=np.float64) / n_sites
    log_w = -beta * np.asarray(base_energies, dtype=np.float64) - kappa * n_sites * (c + 0.5 * phi) ** 2
    p = np.exp(log_w - logsumexp(log_w))
    return p / p.sum()
