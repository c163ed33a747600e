"""Time-series statistics against AR(1) processes, whose autocorrelation is known exactly.

x_t = phi x_{t-1} + e_t with unit-variance noise: var(x) = 1 / (1 - phi^2), rho(t) = phi^t,
tau_int = (1 + phi) / (2 (1 - phi)) in Sokal's convention (1/2 for independent samples).
"""

import numpy as np
import pytest

from lattherm.mcmc.analysis import (
    AnalysisError,
    autocorrelation,
    blocking_error,
    detect_equilibration,
    effective_sample_size,
    integrated_autocorr_time,
    jackknife,
    summarize,
)


def ar1(phi, n_chains, n_steps, seed, x0=None):
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_chains, n_steps))
    x = np.empty((n_chains, n_steps))
    # start in the stationary distribution unless told otherwise
    x[:, 0] = noise[:, 0] / np.sqrt(1 - phi**2) if x0 is None else x0
    for t in range(1, n_steps):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def exact_variance_of_mean(phi, n):
    t = np.arange(1, n)
    return (1.0 / (1 - phi**2)) / n * (1 + 2 * np.sum((1 - t / n) * phi**t))


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_tau_int_matches_ar1(phi):
    x = ar1(phi, n_chains=16, n_steps=8192, seed=1)
    exact = (1 + phi) / (2 * (1 - phi))
    tau = integrated_autocorr_time(x)
    # Sokal: relative standard error of tau is about sqrt(2 (2W + 1) / n) with W ~ 5 tau
    rel_sigma = np.sqrt(2 * (2 * 5 * exact + 1) / x.size)
    assert abs(tau - exact) < 4 * rel_sigma * exact
    assert effective_sample_size(x) == pytest.approx(x.size / (2 * tau))


def test_autocorrelation_decays_as_phi_power_t():
    phi = 0.8
    rho = autocorrelation(ar1(phi, n_chains=16, n_steps=8192, seed=2))
    assert rho[0] == 1.0
    np.testing.assert_allclose(rho[1:6], phi ** np.arange(1, 6), atol=0.02)


@pytest.mark.parametrize("phi", [0.0, 0.9])
def test_blocking_error_matches_exact_variance_of_mean(phi):
    n_chains, n_steps = 16, 1 << 14
    x = ar1(phi, n_chains=n_chains, n_steps=n_steps, seed=3)
    exact = np.sqrt(exact_variance_of_mean(phi, n_steps) / n_chains)
    assert blocking_error(x) == pytest.approx(exact, rel=0.1)
    # the spread of the chain means is an independent check of the same number
    empirical = x.mean(axis=1).std(ddof=1) / np.sqrt(n_chains)
    assert empirical == pytest.approx(exact, rel=0.5)


def test_equilibration_discards_the_transient_only():
    phi = 0.9
    x = ar1(phi, n_chains=8, n_steps=4000, seed=4, x0=200.0)
    t0 = detect_equilibration(x)
    # the transient 200 phi^t falls below the noise (std 2.3) after ~45 steps
    assert 30 <= t0 <= 400
    s = summarize(x)
    assert s.n_discarded == t0
    assert abs(s.mean) < 3 * s.error
    stationary = ar1(phi, n_chains=8, n_steps=4000, seed=5)
    assert detect_equilibration(stationary) < 400


def test_jackknife_error_of_variance():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 500)) * 2.0
    value, error = jackknife(lambda s: s.var(), x)
    n = x.size
    # the variance of a Gaussian sample has standard error sigma^2 sqrt(2 / n)
    assert value == pytest.approx(4.0, abs=4 * 4.0 * np.sqrt(2 / n))
    assert error == pytest.approx(4.0 * np.sqrt(2 / n), rel=0.3)


def test_bad_input_raises():
    with pytest.raises(AnalysisError, match="shape"):
        integrated_autocorr_time(np.zeros((2, 3, 4)))
    with pytest.raises(AnalysisError, match="NaN"):
        blocking_error(np.r_[np.nan, np.ones(99)])
    with pytest.raises(AnalysisError, match="at least"):
        summarize(np.arange(3.0))
    with pytest.raises(AnalysisError, match="at least 64"):
        blocking_error(np.arange(40.0))
