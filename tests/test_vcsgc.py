"""The variance-constrained semi-grand ensemble (VCSGC): the torch move against the exact VCSGC
distribution (enumeration reweighted by composition), its dF/dc estimator and F(c) against the
exact canonical free energies of the 16-site CuAu cell, mchammer's VCSGCEnsemble, and the CLI."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.interpolate import CubicSpline
from scipy.special import gammaln, logsumexp
from scipy.stats import chi2
from typer.testing import CliRunner

from lattherm import K_B_EV
from lattherm.ce.published import published_cluster_expansion
from lattherm.errors import LatthermError
from lattherm.exact.enumeration import configurations, enumerate_energies, vcsgc_probabilities
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.hamiltonians.ising import EdwardsAnderson, SherringtonKirkpatrick
from lattherm.lattices import make_lattice
from lattherm.mcmc.integration import vcsgc_free_energies, vcsgc_free_energy_derivative
from lattherm.mcmc.moves import VarianceConstrainedFlip
from lattherm.mcmc.samplers import run_chains, summarize_chains, vcsgc_scan
from lattherm.observables import standard_observables


@pytest.fixture(scope="module")
def cell16():
    """The published CuAu CE on the 16-site primitive FCC cell (2 x 2 x 4; self-interacting):
    lattice, Hamiltonian, and the energy and species-1 count of all 2^16 configurations."""
    lattice = make_lattice("fcc", (2, 2, 4), a=3.8)
    ham = ClusterExpansionHamiltonian(published_cluster_expansion(), lattice)
    energies, n_ones = enumerate_energies(ham)
    return lattice, ham, energies, n_ones


def state_index(x):
    return (x.long() << torch.arange(x.shape[1])).sum(dim=1).numpy()


def chi_square_p_value(final, probabilities):
    """Pearson's chi-square test of independent final states against exact probabilities;
    states expected fewer than 5 times are pooled into one bin."""
    observed = np.bincount(state_index(final), minlength=len(probabilities))
    expected = probabilities * len(final)
    big = expected >= 5
    obs = np.r_[observed[big], observed[~big].sum()]
    exp = np.r_[expected[big], expected[~big].sum()]
    stat = np.sum((obs - exp) ** 2 / exp)
    return chi2.sf(stat, df=len(obs) - 1)


def test_weight_change_is_that_of_mchammers_acceptance_rule():
    # mchammer's do_vcsgc_flip: potential change kappa k_B T / N (1 + factor (N phi + 2 n)),
    # factor +1 when species 1 is added, -1 when removed, n its count before the flip
    ham = SherringtonKirkpatrick(10, seed=0)
    move = VarianceConstrainedFlip(ham, phi=-0.7, kappa=3.0)
    n, phi, kappa = 10, torch.tensor(-0.7, dtype=torch.float64), 3.0
    for ones in range(n + 1):
        for gain in (1.0, -1.0):
            if not 0 <= ones + gain <= n:
                continue
            ours = move.log_weight_change(torch.tensor(float(ones), dtype=torch.float64), torch.tensor(gain), phi)
            before, after = ones / n, (ones + gain) / n
            exact = -kappa * n * ((after + phi / 2) ** 2 - (before + phi / 2) ** 2)
            mchammer = -kappa / n * (1.0 + gain * (n * phi + 2 * ones))
            assert float(ours) == pytest.approx(float(exact), abs=1e-12) == pytest.approx(float(mchammer), abs=1e-12)


@pytest.mark.parametrize("case", ["random_scan", "colour_classes", "ce_packed"])
def test_final_states_follow_the_exact_vcsgc_distribution(case, cell16):
    # many independent chains far past their mixing time, each with its own (beta, phi): the final
    # states of each group are draws from its stationary distribution, which must be VCSGC's
    if case == "random_scan":  # SK: no colour classes, random sites, Metropolis
        ham, betas, phis, kappa = SherringtonKirkpatrick(6, seed=1), [1.2, 0.6], [-0.6, -1.5], 2.0
    elif case == "colour_classes":  # a pair model: checkerboard classes, decided site by site
        ham, betas, phis, kappa = EdwardsAnderson(make_lattice("square", (2, 4)), seed=2), [0.7, 0.3], [-0.4, -1.2], 1.5
    else:  # the CE, bit-sliced (on this self-interacting cell one site per class)
        ham = cell16[1]
        betas, phis, kappa = [1.0 / (K_B_EV * 1200.0), 1.0 / (K_B_EV * 700.0)], [-0.8, -0.5], 1.0
    n_chains = 4000
    move = VarianceConstrainedFlip(ham, torch.tensor(np.repeat(phis, n_chains)), kappa)
    result = run_chains(ham, betas, n_chains, 40, move=move, burn_in=39, seed=5, observables={}, progress=False)
    energies, n_ones = enumerate_energies(ham)
    for k, (beta, phi) in enumerate(zip(betas, phis)):
        final = result.final[k * n_chains:(k + 1) * n_chains]
        exact = vcsgc_probabilities(energies, n_ones, ham.n_sites, beta, phi, kappa)
        assert chi_square_p_value(final, exact) > 1e-3, (case, beta, phi)
        # negative control: the same states against the distribution with the other sign of phi
        wrong = vcsgc_probabilities(energies, n_ones, ham.n_sites, beta, -phi, kappa)
        assert chi_square_p_value(final, wrong) < 1e-6
