"""Estimators against brute-force enumeration: IS ln Z and its error bar, ESS, IS means, neural
MCMC; Pareto k-hat against weights of a known tail."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import genpareto

from lattherm.exact.enumeration import configurations, exact_thermo
from lattherm.models import MADE, MADEConfig
from lattherm.observables import abs_magnetization, heat_capacity
from lattherm.sampling import (ess_per_sample, free_energy_is, importance_mean, log_weights, log_z_is, neural_mcmc,
                               pareto_k)
from lattherm.systems import build_system

BETA = 0.15
BETA_MCMC = 0.25  # farther from the model: the MH correction has real work to do


@pytest.fixture(scope="module")
def system():
    return build_system({"model": "ising", "lattice": "square", "train_size": [3, 3], "h": 0.2})


@pytest.fixture(scope="module")
def model(system):
    """A fixed, untrained model: random weights, so q differs clearly from p."""
    torch.manual_seed(0)
    m = MADE(MADEConfig(hidden=16, depth=2), system.n_sites)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return m


def exact_ess(model, system, beta):
    """The M -> infinity ESS, (E_q w)^2 / E_q w^2 = Z^2 / sum_x p~(x)^2 / q(x), by enumeration."""
    x = configurations(system.lattice.n_sites, 0, 2**system.lattice.n_sites)
    log_p = -beta * system.hamiltonian.energy(x)
    log_q = model.log_prob(x).detach()
    return math.exp(2 * torch.logsumexp(log_p, 0).item() - torch.logsumexp(2 * log_p - log_q, 0).item())


def test_is_log_z_within_error_and_error_calibrated(model, system):
    exact = exact_thermo(system.hamiltonian, [BETA]).log_z[0]
    gen = torch.Generator().manual_seed(2)
    estimates, errors = [], []
    for _ in range(20):
        x, log_q = model.sample(2000, generator=gen)
        est, err = log_z_is(log_weights(system.hamiltonian.energy(x), log_q, BETA))
        estimates.append(est)
        errors.append(err)
    estimates, errors = np.array(estimates), np.array(errors)
    assert 0.002 < errors.mean() < 0.1  # a real error, not a trivially exact q
    # each estimate within 4 of its own error bars, and the spread matches the error bars
    assert np.all(np.abs(estimates - exact) < 4 * errors)
    assert 0.6 < estimates.std(ddof=1) / errors.mean() < 1.6
    # the pooled estimate is within its (smaller) error of the exact value
    assert abs(estimates.mean() - exact) < 4 * errors.mean() / math.sqrt(20)
    f, f_err = free_energy_is(log_weights(system.hamiltonian.energy(x), log_q, BETA), BETA)
    assert f == pytest.approx(-log_z_is(log_weights(system.hamiltonian.energy(x), log_q, BETA))[0] / BETA)
    assert f_err == pytest.approx(errors[-1] / BETA)


def test_ess_converges_to_exact_limit(model, system):
    x, log_q = model.sample(40000, generator=torch.Generator().manual_seed(3))
    ess = ess_per_sample(log_weights(system.hamiltonian.energy(x), log_q, BETA))
    limit = exact_ess(model, system, BETA)
    assert 0.2 < limit < 0.95
    assert ess == pytest.approx(limit, rel=0.05)


def test_ess_is_one_and_log_z_exact_when_q_is_p(system):
    x = configurations(system.lattice.n_sites, 0, 2**system.lattice.n_sites)
    log_p = -BETA * system.hamiltonian.energy(x)
    log_z = torch.logsumexp(log_p, 0)
    idx = torch.multinomial((log_p - log_z).exp(), 5000, replacement=True,
                            generator=torch.Generator().manual_seed(4))
    log_w = log_weights(system.hamiltonian.energy(x[idx]), (log_p - log_z)[idx], BETA)
    assert ess_per_sample(log_w) == pytest.approx(1.0, abs=1e-12)
    assert pareto_k(log_w) == -math.inf  # no tail at all
    est, err = log_z_is(log_w)
    assert est == pytest.approx(log_z.item(), abs=1e-12)
    assert err < 1e-6


def test_importance_mean_of_the_energy_is_the_boltzmann_mean_with_calibrated_errors(model, system):
    exact = exact_thermo(system.hamiltonian, [BETA]).energy[0]
    gen = torch.Generator().manual_seed(7)
    estimates, errors = [], []
    for _ in range(20):
        x, log_q = model.sample(2000, generator=gen)
        energy = system.hamiltonian.energy(x)
        mean, err = importance_mean(log_weights(energy, log_q, BETA), energy)
        estimates.append(mean)
        errors.append(err)
    estimates, errors = np.array(estimates), np.array(errors)
    assert np.all(np.abs(estimates - exact) < 4 * errors)
    assert 0.6 < estimates.std(ddof=1) / errors.mean() < 1.6
    with pytest.raises(ValueError, match="3 values for 2 log-weights"):
        importance_mean(torch.zeros(2), torch.zeros(3))


def test_importance_mean_sees_a_region_q_never_draws_where_ess_and_k_hat_cannot(system):
    """q = p restricted to magnetisation > 0 (a missed phase): every weight is the same, so ESS = 1
    and k-hat = -inf, yet the energy misses the m < 0 half (in a field h = 0.2: higher energies)."""
    x = configurations(system.lattice.n_sites, 0, 2**system.lattice.n_sites)
    energy = system.hamiltonian.energy(x)
    log_p = -BETA * energy
    plus = x.sum(1) > system.lattice.n_sites / 2
    log_q = torch.where(plus, log_p - torch.logsumexp(log_p[plus], 0), -math.inf)
    idx = torch.multinomial(log_q.exp(), 5000, replacement=True, generator=torch.Generator().manual_seed(8))
    log_w = log_weights(energy[idx], log_q[idx], BETA)
    assert ess_per_sample(log_w) == pytest.approx(1.0, abs=1e-12) and pareto_k(log_w) == -math.inf
    mean, err = importance_mean(log_w, energy[idx])
    exact = exact_thermo(system.hamiltonian, [BETA]).energy[0]
    assert abs(mean - exact) > 8 * err


@pytest.mark.parametrize("shape", [0.2, 0.5, 1.0])
def test_pareto_k_recovers_the_shape_of_a_generalized_pareto_tail(shape):
    """Weights drawn from a generalized Pareto distribution have a tail of the same shape: the
    median k-hat of nine runs of 20000 (a tail of 425 each) is within 0.1 of it, and runs at
    0.2 and 1.0 fall on their side of PSIS's 0.7."""
    rng = np.random.default_rng(5)
    ks = [pareto_k(torch.from_numpy(np.log(genpareto.rvs(shape, size=20000, random_state=rng))))
          for _ in range(9)]
    assert abs(np.median(ks) - shape) < 0.1, ks
    if shape != 0.5:
        assert all((k > 0.7) == (shape > 0.7) for k in ks), ks


def test_pareto_k_needs_a_tail_of_five_distinct_weights():
    assert math.isnan(pareto_k(torch.randn(20, dtype=torch.float64)))
    assert math.isfinite(pareto_k(torch.randn(21, dtype=torch.float64)))
    # a small state space sampled over and over: its largest weights are a few atoms, not a tail
    atoms = torch.linspace(0.0, 5.0, 200, dtype=torch.float64)  # each drawn about 100 times: 5 in a tail of 425
    assert math.isnan(pareto_k(atoms[torch.randint(200, (20000,), generator=torch.Generator().manual_seed(6))]))


def test_bad_log_weights_raise():
    with pytest.raises(ValueError, match="empty"):
        ess_per_sample(torch.tensor([]))
    with pytest.raises(ValueError, match="NaN"):
        log_z_is(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="2 samples"):
        log_z_is(torch.tensor([0.0]))


def test_neural_mcmc_matches_exact_averages(model, system):
    x_all = configurations(9, 0, 2**9)
    e_all = system.hamiltonian.energy(x_all)
    p = torch.softmax(-BETA_MCMC * e_all, 0)
    exact = exact_thermo(system.hamiltonian, [BETA_MCMC])
    exact_m = float(p @ abs_magnetization(x_all))
    res = neural_mcmc(model, system.hamiltonian, BETA_MCMC, n_chains=64, n_steps=400, burn_in=50,
                      observables={"abs_magnetization": abs_magnetization},
                      generator=torch.Generator().manual_seed(5))
    assert res.energy.shape == (64, 350)
    assert 0.05 < res.acceptance < 0.95
    assert res.tau_int["energy"] >= 0.5
    e, e_err = res.mean_and_error("energy")
    assert abs(e - exact.energy[0]) < 4 * e_err
    m, m_err = res.mean_and_error("abs_magnetization")
    assert abs(m - exact_m) < 4 * m_err
    assert heat_capacity(res.energy, BETA_MCMC) == pytest.approx(exact.heat_capacity[0], rel=0.1)


def test_neural_mcmc_canonical(system):
    torch.manual_seed(0)
    model = MADE(MADEConfig(hidden=8), system.n_sites)  # untrained: uniform over the allowed x
    res = neural_mcmc(model, system.hamiltonian, 0.6, n_chains=64, n_steps=300, burn_in=50, n_ones=4,
                      generator=torch.Generator().manual_seed(6))
    exact = exact_thermo(system.hamiltonian, [0.6], n_ones=4)
    e, e_err = res.mean_and_error()
    assert abs(e - exact.energy[0]) < 4 * e_err
