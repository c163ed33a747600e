"""Statistics of Markov-chain time series: autocorrelation, equilibration, error bars.

Convention (Sokal): the integrated autocorrelation time is

    tau_int = 1/2 + sum_{t >= 1} rho(t),

so that the variance of the mean of n correlated samples is var(x) * 2 tau_int / n and the
effective sample size is n / (2 tau_int). Uncorrelated samples have tau_int = 1/2; an AR(1)
process x_t = phi x_{t-1} + noise has rho(t) = phi^t and tau_int = (1 + phi) / (2 (1 - phi)).

Every function accepts one chain, shape (T,), or independent chains of equal length, shape
(B, T) (time along the last axis). Chains are never concatenated: each keeps its own mean in
the autocovariance, and the chain-averaged autocovariance gives one tau_int for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from lattherm.errors import LatthermError


class AnalysisError(LatthermError):
    """A time series too short, non-finite or of the wrong shape to analyse."""


def _as_chains(x, min_length: int = 4) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise AnalysisError(f"time series must have shape (T,) or (B, T), got {x.shape}")
    if x.shape[1] < min_length:
        raise AnalysisError(f"time series needs at least {min_length} samples per chain, got {x.shape[1]}")
    if not np.all(np.isfinite(x)):
        raise AnalysisError("time series contains NaN or infinite values")
    return x


def autocorrelation(x) -> np.ndarray:
    """Normalised autocorrelation rho(t), t = 0..T-1, averaged over chains (FFT, O(T log T))."""
    x = _as_chains(x, min_length=2)
    n = x.shape[1]
    d = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()  # zero padding: a linear, not circular, correlation
    f = np.fft.rfft(d, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n].mean(axis=0) / n
    if acov[0] <= 0:
        return np.r_[1.0, np.zeros(n - 1)]  # a constant series: no fluctuations to correlate
    return acov / acov[0]


def integrated_autocorr_time(x, c: float = 5.0) -> float:
    """tau_int with Sokal's automatic window: the smallest W with W >= c * tau_int(W).

    The window cuts the noisy tail of rho(t); c = 5 is Sokal's choice for roughly
    exponential decay. Returns 1/2 for a constant series.
    """
    rho = autocorrelation(x)
    taus = 0.5 + np.cumsum(rho[1:])  # taus[W - 1] = tau_int(W)
    windows = np.arange(1, len(rho))
    ok = windows >= c * taus
    if not np.any(ok):
        # the series is shorter than c * tau_int: return the largest-window estimate
        return float(max(taus[-1], 0.5))
    return float(max(taus[np.argmax(ok)], 0.5))


def effective_sample_size(x, c: float = 5.0) -> float:
    """Number of independent samples, B * T / (2 tau_int)."""
    chains = _as_chains(x)
    return chains.size / (2.0 * integrated_autocorr_time(chains, c))


_MIN_BLOCKS = 32


def blocking_error(x, confidence: float = 0.99) -> float:
    """Standard error of the mean by automated blocking (Jonsson, Phys. Rev. E 98, 043304, 2018).

    Each chain is cut to its last 2^n samples and blocked by repeatedly averaging pairs. At
    level k there are n_k = B * 2^(d-k) blocks in all, with variance s_k and lag-1
    autocovariance gamma_k (both averaged over chains, each chain about its own mean). The
    first level where the remaining levels show no significant lag-1 correlation, i.e.
    M_k = sum_{j>=k} n_j (gamma_j / s_j)^2 is below the chi-square quantile with d - k degrees
    of freedom, gives var(mean) = s_k / n_k. Pooling the chains gives the test the power of all
    B * T samples, so it keeps blocking until residual correlation is negligible.
    """
    chains = _as_chains(x, min_length=2 * _MIN_BLOCKS)
    # Levels stop while each chain still has _MIN_BLOCKS blocks: with fewer, removing each
    # chain's own mean biases gamma_k by -s_k / (blocks per chain) and the test misfires.
    n_levels = int(np.floor(np.log2(chains.shape[1])))
    d = n_levels - int(np.log2(_MIN_BLOCKS)) + 1
    y = chains[:, -(1 << n_levels):]
    s, gamma, n_blocks = np.empty(d), np.empty(d), np.empty(d)
    for k in range(d):
        dev = y - y.mean(axis=1, keepdims=True)
        s[k] = np.mean(dev**2)
        gamma[k] = np.mean(np.sum(dev[:, :-1] * dev[:, 1:], axis=1) / y.shape[1])
        n_blocks[k] = y.size
        y = 0.5 * (y[:, 0::2] + y[:, 1::2])
    if s[0] == 0:
        return 0.0  # a constant series has no error
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(s > 0, n_blocks * (gamma / s) ** 2, 0.0)
    m = np.cumsum(terms[::-1])[::-1]
    passing = np.nonzero(m < chi2.ppf(confidence, df=d - np.arange(d)))[0]
    # no level passes: the chains are too short for their correlation; the last level is the best
    k = passing[0] if len(passing) else d - 1
    return float(np.sqrt(s[k] / n_blocks[k]))


def detect_equilibration(x, n_candidates: int = 50, c: float = 5.0) -> int:
    """Number of leading samples to discard (pymbar's rule, Chodera JCTC 12, 1799, 2016).

    Among candidate origins t0 (a grid over the first half of the series) pick the one that
    maximises the effective number of samples of the remainder, (T - t0) / (2 tau_int(x[t0:])).
    A transient inflates the variance and tau_int of any window that contains it, so the
    maximum sits just after the transient.
    """
    chains = _as_chains(x, min_length=8)
    n = chains.shape[1]
    candidates = np.unique(np.linspace(0, n // 2, n_candidates).astype(int))
    n_eff = [(n - t0) / (2.0 * integrated_autocorr_time(chains[:, t0:], c)) for t0 in candidates]
    return int(candidates[int(np.argmax(n_eff))])


def jackknife(estimator, x, n_bins: int = 32) -> tuple[float, float]:
    """Estimate and jackknife error of a nonlinear statistic ``estimator(samples) -> float``.

    Bins are whole chains when there are at least ``n_bins`` of them (independent by
    construction), else contiguous blocks of each chain; blocks far longer than tau_int make
    the leave-one-out estimates independent enough for an honest error bar.
    """
    chains = _as_chains(x)
    b, n = chains.shape
    per_chain = max(1, -(-n_bins // b))
    length = n // per_chain
    if length < 1:
        raise AnalysisError(f"cannot cut chains of length {n} into {per_chain} blocks")
    bins = chains[:, : per_chain * length].reshape(b * per_chain, length)
    full = float(estimator(bins.ravel()))
    m = len(bins)
    loo = np.array([estimator(np.delete(bins, i, axis=0).ravel()) for i in range(m)])
    error = np.sqrt((m - 1) / m * np.sum((loo - loo.mean()) ** 2))
    return full, float(error)


@dataclass(frozen=True)
class Summary:
    """Mean and error of one observable after equilibration detection."""

    mean: float
    error: float
    tau_int: float
    n_eff: float
    n_discarded: int


def summarize(x, discard: int | None = None) -> Summary:
    """Discard the equilibration prefix (detected unless given), then mean, blocking error,
    tau_int and effective sample size of the rest."""
    chains = _as_chains(x, min_length=8)
    t0 = detect_equilibration(chains) if discard is None else int(discard)
    if not 0 <= t0 < chains.shape[1] - 4:
        raise AnalysisError(f"cannot discard {t0} of {chains.shape[1]} samples")
    rest = chains[:, t0:]
    tau = integrated_autocorr_time(rest)
    return Summary(mean=float(rest.mean()), error=blocking_error(rest), tau_int=tau,
                   n_eff=rest.size / (2.0 * tau), n_discarded=t0)
