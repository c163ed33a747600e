"""The overlap distribution P(q) from samples, and the chi-square test against a reference P(q).

Overlaps of N sites take the N + 1 values q = 1 - 2 d / N (d = 0..N sites differ), so a
histogram over d is exact binning. Two sources of replica pairs:

- MCMC: two independent chains at the same temperature, one overlap per recorded sweep; the
  samples are correlated in time, so the histogram counts as ``n_eff`` = pairs x records /
  (2 tau_int) independent draws (:func:`effective_pair_count`).
- a neural sampler: disjoint pairs (x_2k, x_2k+1) of independent samples of q; where q is not
  the Boltzmann distribution p, the pair (a, b) has importance weight w_a w_b
  (w = p / q up to a constant), self-normalised, and counts as Kish's (sum w)^2 / sum w^2.

:func:`chi_square_test` compares a histogram of ``n_eff`` draws with a reference distribution,
pooling neighbouring bins until each expects at least ``min_expected`` draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import chi2

from lattherm.errors import LatthermError
from lattherm.mcmc.analysis import integrated_autocorr_time
from lattherm.models.physics import set_physics_beta
from lattherm.observables import overlap
from lattherm.sampling.estimators import log_weights


def overlap_bins(q, n_sites: int) -> np.ndarray:
    """The bin d = N (1 - q) / 2 of each overlap (an integer 0..N; q must be an overlap of N sites)."""
    distance = np.asarray(q, dtype=np.float64) * -0.5 * n_sites + 0.5 * n_sites
    bins = np.rint(distance).astype(np.int64)
    if np.any(np.abs(distance - bins) > 1e-6) or np.any((bins < 0) | (bins > n_sites)):
        raise LatthermError(f"overlaps must be 1 - 2 d / {n_sites} for whole d in 0..{n_sites}")
    return bins


def overlap_histogram(q, n_sites: int, log_weights=None) -> np.ndarray:
    """P(d), d = 0..N, of the overlaps ``q``, each weighted by exp(log_weights) (self-normalised)."""
    bins = overlap_bins(q, n_sites).ravel()
    weights = None if log_weights is None else _normalised(log_weights)
    if weights is not None and weights.shape != bins.shape:
        raise LatthermError(f"need one weight per overlap, got {weights.shape} for {bins.shape}")
    counts = np.bincount(bins, weights=weights, minlength=n_sites + 1)
    return counts / counts.sum()


def histogram_errors(distribution: np.ndarray, n_eff: float) -> np.ndarray:
    """Standard errors of a histogram of ``n_eff`` independent draws: sqrt(P (1 - P) / n_eff)."""
    distribution = np.asarray(distribution, dtype=np.float64)
    return np.sqrt(distribution * (1.0 - distribution) / n_eff)


def pair_log_weights(log_w) -> np.ndarray:
    """ln(w_a w_b) of the disjoint pairs (2k, 2k+1) of samples with log-weights ``log_w``."""
    log_w = np.asarray(log_w, dtype=np.float64).ravel()
    pairs = len(log_w) // 2
    if pairs == 0:
        raise LatthermError("need at least two samples for one replica pair")
    return log_w[0 : 2 * pairs : 2] + log_w[1 : 2 * pairs : 2]


def kish_count(log_weights) -> float:
    """(sum w)^2 / sum w^2: how many unweighted draws the weighted ones are worth."""
    w = _normalised(log_weights)
    return float(1.0 / np.sum(w * w))


def effective_pair_count(q_series) -> float:
    """Independent draws a (pairs, records) array of MCMC overlap series is worth: pairs x records
    / (2 tau), with tau the larger integrated autocorrelation time of q and |q| (q's sign is the
    slow mode of a Z2-symmetric glass; |q| its amplitude)."""
    q_series = np.asarray(q_series, dtype=np.float64)
    if q_series.ndim != 2:
        raise LatthermError(f"overlap series must be (pairs, records), got shape {q_series.shape}")
    taus = [integrated_autocorr_time(series) for series in (q_series, np.abs(q_series)) if np.ptp(series) > 0]
    tau = max(taus, default=0.5)
    return q_series.size / (2.0 * max(tau, 0.5))


@torch.no_grad()
def sampler_overlaps(model, system, temperature: float, n_samples: int, conditioning=None, seed: int = 0,
                     batch_size: int = 4096) -> tuple[np.ndarray, float]:
    """P(d) of a trained sampler of ``system`` at ``temperature`` from ``n_samples`` // 2 disjoint
    pairs of its samples, importance-weighted to the Boltzmann distribution, and the Kish count
    of the pair weights (the draws the histogram is worth). A conditional model needs the
    ``conditioning`` saved with its checkpoint (:func:`lattherm.sampling.evaluate.system_cond`)."""
    from lattherm.sampling.evaluate import system_cond

    if n_samples < 2:
        raise LatthermError(f"need at least two samples for one replica pair, got {n_samples}")
    device = next(model.parameters()).device
    hamiltonian = system.hamiltonian.to(device)
    beta = system.beta(temperature)
    set_physics_beta(model, beta)
    generator = torch.Generator(device=device).manual_seed(seed)
    q_parts, log_w_parts = [], []
    for start in range(0, n_samples - 1, batch_size):
        n = min(batch_size, n_samples - start) // 2 * 2
        cond = system_cond(model, system, temperature, conditioning, n)
        x, log_q = model.sample(n, cond=None if cond is None else cond.to(device), n_ones=system.n_ones,
                                generator=generator)
        q_parts.append(overlap(x[0::2], x[1::2]).cpu().numpy())
        log_w_parts.append(pair_log_weights(log_weights(hamiltonian.energy(x), log_q, beta).cpu().numpy()))
    q, log_w = np.concatenate(q_parts), np.concatenate(log_w_parts)
    return overlap_histogram(q, system.n_sites, log_w), kish_count(log_w)


@dataclass
class ChiSquare:
    """Pearson's statistic over the pooled bins, its degrees of freedom and p-value (NaN when
    the draws are too few for two bins: no test)."""

    statistic: float
    dof: int
    p_value: float


def chi_square_test(observed: np.ndarray, n_eff: float, expected: np.ndarray,
                    min_expected: float = 5.0) -> ChiSquare:
    """Is ``observed`` (a normalised histogram of ``n_eff`` independent draws) a sample of
    ``expected``? Neighbouring bins are pooled, from q = 1 down, until each expects at least
    ``min_expected`` draws (the last group takes any remainder)."""
    observed, expected = np.asarray(observed, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if observed.shape != expected.shape or observed.ndim != 1:
        raise LatthermError(f"histograms must be 1-D of equal length, got {observed.shape} and {expected.shape}")
    if not n_eff > 0:
        raise LatthermError(f"the effective number of draws must be positive, got {n_eff}")
    groups, current = [], []
    for d in range(len(expected)):
        current.append(d)
        if expected[current].sum() * n_eff >= min_expected:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1] += current
        else:
            groups.append(current)
    obs = np.array([observed[g].sum() for g in groups]) * n_eff
    exp = np.array([expected[g].sum() for g in groups]) * n_eff
    statistic = float(np.sum((obs - exp) ** 2 / exp))
    dof = len(groups) - 1
    return ChiSquare(statistic, dof, float(chi2.sf(statistic, dof)) if dof > 0 else float("nan"))


def _normalised(log_weights) -> np.ndarray:
    log_weights = np.asarray(log_weights, dtype=np.float64).ravel()
    if len(log_weights) == 0 or not np.all(np.isfinite(log_weights)):
        raise LatthermError("log-weights must be finite and non-empty")
    w = np.exp(log_weights - log_weights.max())
    return w / w.sum()
