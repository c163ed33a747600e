"""The exact overlap distribution P(q) of two independent replicas, by enumeration (N <= 24).

Two replicas a, b drawn independently from the Boltzmann distribution p have overlap
q = mean_i s_i^a s_i^b = 1 - 2 d(a, b) / N, with d the Hamming distance: q depends only on the
mask m = a XOR b. The probability of a mask is the autocorrelation of p over the hypercube,
A(m) = sum_a p(a) p(a XOR m), which two fast Walsh-Hadamard transforms give in O(N 2^N)
(the transform diagonalises XOR-convolution: A = H (H p)^2 / 2^N). Then
P(d) = sum_{|m| = d} A(m), and the spin-glass susceptibility chi_SG = N <q^2>.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lattherm.errors import LatthermError
from lattherm.exact.enumeration import MAX_SITES, _as_betas, _moments, enumerate_energies
from lattherm.hamiltonians.base import Hamiltonian


def walsh_hadamard(values: np.ndarray) -> np.ndarray:
    """The unnormalised Walsh-Hadamard transform of a length-2^N vector (a new array):
    H v (k) = sum_a v(a) (-1)^popcount(k AND a). H H = 2^N times the identity."""
    out = np.array(values, dtype=np.float64)
    size = len(out)
    if out.ndim != 1 or size == 0 or size & (size - 1):
        raise LatthermError(f"the Walsh-Hadamard transform needs a 1-D array of length 2^N, got shape {out.shape}")
    half = 1
    while half < size:
        pairs = out.reshape(-1, 2, half)
        upper = pairs[:, 0, :] - pairs[:, 1, :]
        pairs[:, 0, :] += pairs[:, 1, :]
        pairs[:, 1, :] = upper
        half *= 2
    return out


def overlap_values(n_sites: int) -> np.ndarray:
    """The N + 1 possible overlaps q = 1 - 2 d / N, d = 0..N (descending from 1 to -1)."""
    return 1.0 - 2.0 * np.arange(n_sites + 1) / n_sites


def overlap_distribution(probabilities: np.ndarray, n_ones: np.ndarray, n_sites: int) -> np.ndarray:
    """P(d), d = 0..N: the probability that two independent draws from ``probabilities`` (over
    all 2^N configurations, in index order) differ on d sites. ``n_ones`` is the popcount of each
    index (as :func:`lattherm.exact.enumeration.enumerate_energies` returns it)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (1 << n_sites,) or np.shape(n_ones) != probabilities.shape:
        raise LatthermError(f"need one probability and one popcount per configuration of {n_sites} sites, "
                            f"got {probabilities.shape} and {np.shape(n_ones)}")
    transformed = walsh_hadamard(probabilities)
    autocorrelation = walsh_hadamard(transformed * transformed) / len(probabilities)
    return np.bincount(n_ones, weights=autocorrelation, minlength=n_sites + 1)


def susceptibility(distribution: np.ndarray, n_sites: int) -> float:
    """chi_SG = N <q^2> of a distribution P(d) over d = 0..N."""
    return float(n_sites * np.sum(np.asarray(distribution) * overlap_values(n_sites) ** 2))


def exact_overlap_table(hamiltonian: Hamiltonian, betas, canonical_n_ones: int | None = None) -> pd.DataFrame:
    """Exact P(q) at each beta, long format: beta, q, probability (N + 1 rows per beta, q from
    1 down to -1); ``chi_sg`` repeats the susceptibility on every row of its beta. With
    ``canonical_n_ones``, both replicas are drawn from the canonical ensemble of configurations
    with that many ones (p = 0 elsewhere)."""
    betas = _as_betas(betas)
    energies, n_ones = enumerate_energies(hamiltonian)
    n = hamiltonian.n_sites
    allowed = np.ones(len(energies), dtype=bool) if canonical_n_ones is None else n_ones == canonical_n_ones
    if not allowed.any():
        raise LatthermError(f"no configuration of {n} sites has {canonical_n_ones} ones")
    tables = []
    for beta in betas:
        probabilities = np.zeros(len(energies))
        probabilities[allowed] = _moments(energies[allowed], beta)[3]
        distribution = overlap_distribution(probabilities, n_ones, n)
        tables.append(pd.DataFrame({"beta": beta, "q": overlap_values(n), "probability": distribution,
                                    "chi_sg": susceptibility(distribution, n)}))
    return pd.concat(tables, ignore_index=True)


def overlap_reference_table(system, enumerate_max_sites: int = MAX_SITES) -> pd.DataFrame:
    """The exact P(q) of a :class:`lattherm.systems.System` at every temperature it is evaluated
    or scanned at, with system, method, size and temperature columns first."""
    from lattherm.exact import reference_temperatures
    from lattherm.lattices import size_tag

    limit = min(enumerate_max_sites, MAX_SITES)
    if system.n_sites > limit:
        raise LatthermError(f"system {system.name!r} on the {size_tag(system.size)} cell has {system.n_sites} sites; "
                            f"the exact P(q) enumerates at most {limit}")
    temperatures = reference_temperatures(system.config)
    table = exact_overlap_table(system.hamiltonian, [system.beta(t) for t in temperatures], system.n_ones)
    table.insert(0, "temperature", np.repeat(temperatures, system.n_sites + 1))
    for i, (name, value) in enumerate({"system": system.name, "method": "enumeration",
                                       "size": size_tag(system.size)}.items()):
        table.insert(i, name, value)
    return table
