"""Batched torch samplers against exact references: Kaufman (L = 8 Ising), brute-force
enumeration (16-site CuAu CE), and exact Boltzmann histograms of tiny systems."""

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from lattherm import K_B_EV
from lattherm.ce.published import published_cluster_expansion
from lattherm.exact.enumeration import configurations, exact_thermo
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.hamiltonians.ising import EdwardsAnderson, Ising, SherringtonKirkpatrick
from lattherm.lattices import make_lattice
from lattherm.mcmc.moves import Flip, Swap
from lattherm.mcmc.samplers import colour_classes, parallel_tempering, run_chains, scan
from lattherm.observables import standard_observables



def cuau_test_ce():
    """The published DFT-fitted CuAu cluster expansion (icet), 11 parameters."""
    return published_cluster_expansion()


def sigmas(value, exact, error):
    return np.abs(np.asarray(value) - np.asarray(exact)) / np.asarray(error)


@pytest.mark.parametrize("move, n_sweeps", [("flip", 500), ("wolff", 500)])
def test_ising_l8_matches_kaufman(move, n_sweeps):
    betas = [0.3, BETA_C, 0.6]
    table = scan(Ising(make_lattice("square", 8)), betas, n_chains=48, n_sweeps=n_sweeps, move=move,
                 burn_in=100, seed=11)
    exact = ising_thermo(8, 8, betas)
    dev_e = sigmas(table.energy, exact.energy, table.energy_err)
    dev_c = sigmas(table.heat_capacity, exact.heat_capacity, table.heat_capacity_err)
    print(f"\n{move}: energy deviations {np.round(dev_e, 2)} sigma, heat capacity {np.round(dev_c, 2)} sigma")
    assert np.all(dev_e < 3) and np.all(dev_c < 3)
    # error bars are meaningful: relative errors are small but not zero
    assert np.all(table.energy_err > 0) and np.all(table.energy_err / table.energy.abs() < 0.01)
    assert np.all(table.tau_int >= 0.5) and np.all(table.n_eff > 100)


def test_checkerboard_colouring_of_square_lattice():
    classes = colour_classes(Ising(make_lattice("square", 4)))
    assert len(classes) == 2 and sorted(torch.cat(classes).tolist()) == list(range(16))
    table = Ising(make_lattice("square", 4)).neighbours
    for sites in classes:  # no two sites of one class are neighbours
        assert not np.isin(table[sites].numpy(), sites.numpy()).any()
    assert colour_classes(SherringtonKirkpatrick(6)) is None


def exact_average(hamiltonian, beta, observable, n_ones=None):
    """Boltzmann average of an observable over all 2^N configurations."""
    x = configurations(hamiltonian.n_sites, 0, 1 << hamiltonian.n_sites)
    return float(boltzmann(hamiltonian, beta, n_ones) @ observable(x).double().numpy())


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
def test_cuau_16_site_ce_matches_enumeration(parallel):
    # the 16-site cell is self-interacting and every site shares a cluster with every other:
    # the parallel moves run one site (flip) or one pair (swap) per step, bit-sliced over chains
    ce = cuau_test_ce()
    lattice = make_lattice("fcc", (2, 2, 4), a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    temperature = 800.0
    beta = 1.0 / (K_B_EV * temperature)
    obs = standard_observables(lattice)

    # parallel swaps pick pairs regardless of species (half are null moves) and on this cell run
    # one pair per step: from a random start they need ~400 sweeps to equilibrate at 800 K (the
    # serial swaps ~100), and 60 sweeps of burn-in left E 5 sigma high. They keep exact samples
    # exact (test_parallel_swaps_keep_exact_samples_exact): slow, not biased.
    canonical = scan(ham, [beta], n_chains=32, n_sweeps=900 if parallel else 200,
                     move=Swap(ham, parallel=parallel), n_ones=8, burn_in=450 if parallel else 20, seed=3, observables=obs)
    exact = exact_thermo(ham, [beta], n_ones=8)
    order = exact_average(ham, beta, obs["order_parameter"], n_ones=8)
    dev = [sigmas(canonical.energy, exact.energy, canonical.energy_err)[0],
           sigmas(canonical.heat_capacity, exact.heat_capacity, canonical.heat_capacity_err)[0],
           sigmas(canonical.order_parameter, order, canonical.order_parameter_err)[0]]
    assert np.allclose(canonical.composition, 0.5) and canonical.composition_err[0] == 0

    dmu = 0.02
    semi = SemiGrand(ham, dmu)
    grand = scan(semi, [beta], n_chains=32, n_sweeps=200, move=Flip(semi, parallel=parallel), burn_in=20, seed=4,
                 observables=obs)
    exact_sg = exact_thermo(semi, [beta])
    order_sg = exact_average(semi, beta, obs["order_parameter"])
    dev += [sigmas(grand.energy, exact_sg.energy, grand.energy_err)[0],
            sigmas(grand.heat_capacity, exact_sg.heat_capacity, grand.heat_capacity_err)[0],
            sigmas(grand.composition, exact_sg.concentration, grand.composition_err)[0],
            sigmas(grand.order_parameter, order_sg, grand.order_parameter_err)[0]]
    print(f"\nCE canonical E, C, eta; semi-grand E, C, x, eta deviations: {np.round(dev, 2)} sigma")
    assert np.all(np.array(dev) < 3)
    # the four sublattice concentrations average to the composition
    subs = grand[[f"c_sub{k}" for k in range(4)]].to_numpy().mean()
    assert subs == pytest.approx(grand.composition[0], abs=1e-12)


@pytest.mark.parametrize("temperature, invariant", [(800.0, True), (500.0, False)])
def test_parallel_swaps_keep_exact_samples_exact(temperature, invariant):
    # Independent exact canonical samples at 800 K on the 16-site self-interacting cell, then a
    # few parallel swap sweeps at `temperature`: a kernel that leaves the Boltzmann distribution
    # invariant keeps <E> within the samples' error of the exact value; sweeps at another
    # temperature (the negative control) move it many sigma.
    ham = ClusterExpansionHamiltonian(cuau_test_ce(), make_lattice("fcc", (2, 2, 4), a=3.8))
    beta = 1.0 / (K_B_EV * 800.0)
    p = boltzmann(ham, beta, n_ones=8)
    gen = torch.Generator().manual_seed(9)
    index = torch.multinomial(torch.as_tensor(p), 1 << 15, replacement=True, generator=gen)
    x = ((index[:, None] >> torch.arange(16)) & 1).to(torch.int64)
    exact = float(p @ ham.energy(configurations(16, 0, 1 << 16)).numpy())
    move = Swap(ham, parallel=True)
    sweep_beta = torch.full((len(x),), 1.0 / (K_B_EV * temperature), dtype=torch.float64)
    for _ in range(4):
        move.sweep(x, sweep_beta, gen)
    energy = ham.energy(x).numpy()
    assert x.sum(dim=1).eq(8).all()
    deviation = abs(energy.mean() - exact) / (energy.std() / np.sqrt(len(energy)))
    assert (deviation < 4) if invariant else (deviation > 10), deviation


def boltzmann(hamiltonian, beta, n_ones=None):
    """Exact Boltzmann probabilities of all 2^N configurations (index k: x_i = bit i of k)."""
    x = configurations(hamiltonian.n_sites, 0, 1 << hamiltonian.n_sites)
    log_w = -beta * hamiltonian.energy(x).numpy()
    if n_ones is not None:
        log_w[x.sum(dim=1).numpy() != n_ones] = -np.inf
    p = np.exp(log_w - log_w.max())
    return p / p.sum()


def chi_square_p_value(final, probabilities):
    """p-value of Pearson's chi-square test of independent final states against exact
    probabilities; states expected fewer than 5 times are pooled into one bin."""
    index = (final.long() << torch.arange(final.shape[1])).sum(dim=1).numpy()
    observed = np.bincount(index, minlength=len(probabilities))
    expected = probabilities * len(index)
    assert observed[expected == 0].sum() == 0  # never visits a forbidden state
    big = expected >= 5
    small = (expected > 0) & ~big
    obs = np.r_[observed[big], observed[small].sum()]
    exp = np.r_[expected[big], expected[small].sum()]
    keep = exp > 0
    stat = np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep])
    return chi2.sf(stat, df=keep.sum() - 1)


@pytest.mark.parametrize("case", ["flip_random_scan", "flip_checkerboard", "swap", "wolff", "ce_flip_parallel",
                                  "ce_swap_parallel"])
def test_final_states_follow_exact_boltzmann_distribution(case):
    # Many independent chains, each run far past its mixing time: the final states are
    # independent draws from the chain's stationary distribution, which must be Boltzmann's.
    if case == "flip_random_scan":
        ham, beta, move, n_ones = SherringtonKirkpatrick(6, seed=1), 1.5, "flip", None
    elif case == "flip_checkerboard":
        ham, beta, move, n_ones = EdwardsAnderson(make_lattice("square", (2, 4)), seed=2), 0.7, "flip", None
    elif case == "swap":
        ham, beta, move, n_ones = SherringtonKirkpatrick(7, seed=3), 1.0, "swap", 3
    elif case == "wolff":
        ham, beta, move, n_ones = Ising(make_lattice("square", (2, 4))), 0.4, "wolff", None
    else:  # the 16-site self-interacting CuAu cell at 1200 K, bit-sliced colour-class / pair moves
        ce = ClusterExpansionHamiltonian(cuau_test_ce(), make_lattice("fcc", (2, 2, 4), a=3.8))
        beta = 1.0 / (K_B_EV * 1200.0)
        ham, n_ones = (SemiGrand(ce, 0.01), None) if case == "ce_flip_parallel" else (ce, 8)
        move = Flip(ham) if case == "ce_flip_parallel" else Swap(ham, parallel=True)
    n_sweeps = 120 if case == "ce_swap_parallel" else 40
    result = run_chains(ham, beta, n_chains=4000, n_sweeps=n_sweeps, move=move, n_ones=n_ones, burn_in=n_sweeps - 1,
                        seed=5)
    assert chi_square_p_value(result.final, boltzmann(ham, beta, n_ones)) > 1e-3


def test_parallel_tempering_on_sk_matches_enumeration():
    ham = SherringtonKirkpatrick(10, seed=7)
    betas = np.linspace(0.5, 3.0, 6)
    result = parallel_tempering(ham, betas, n_chains=2000, n_sweeps=40, burn_in=39, seed=8)
    assert result.exchange_acceptance.shape == (5,)
    assert np.all(result.exchange_acceptance > 0.2) and np.all(result.exchange_acceptance <= 1)
    for k, beta in enumerate(betas):
        final = result.final[k * 2000:(k + 1) * 2000]
        assert chi_square_p_value(final, boltzmann(ham, beta)) > 1e-3


def test_bad_arguments_raise():
    ising = Ising(make_lattice("square", 4))
    with pytest.raises(ValueError, match="move"):
        run_chains(ising, 0.3, 2, 10, move="heatbath")
    with pytest.raises(ValueError, match="n_ones"):
        run_chains(ising, 0.3, 2, 10, move="swap")
    with pytest.raises(ValueError, match="Wolff"):
        run_chains(Ising(make_lattice("square", 4), h=0.1), 0.3, 2, 10, move="wolff")
    with pytest.raises(ValueError, match="burn_in"):
        run_chains(ising, 0.3, 2, 10, burn_in=10)
    with pytest.raises(ValueError, match="beta"):
        run_chains(ising, -1.0, 2, 10)
    with pytest.raises(ValueError, match="increasing"):
        parallel_tempering(ising, [0.5, 0.3], 2, 10)


@pytest.mark.slow
@pytest.mark.parametrize("ensemble", ["canonical", "semi_grand"])
def test_parallel_ce_moves_agree_with_serial_moves_on_256_sites(ensemble):
    """Parallel bit-sliced moves vs the previous serial random moves (the fcc_cubic 4x4x4 cell,
    not self-interacting): energy and order parameter within error bars."""
    lattice = make_lattice("fcc_cubic", (4, 4, 4), a=3.8)
    ce = ClusterExpansionHamiltonian(cuau_test_ce(), lattice)
    ham = ce if ensemble == "canonical" else SemiGrand(ce, 0.0)
    kind, n_ones = (Swap, 128) if ensemble == "canonical" else (Flip, None)
    beta = 1.0 / (K_B_EV * 900.0)
    obs = {k: v for k, v in standard_observables(lattice).items() if k in ("order_parameter", "composition")}
    tables = [scan(ham, [beta], n_chains=chains, n_sweeps=sweeps, move=kind(ham, parallel=parallel), n_ones=n_ones,
                   burn_in=40, seed=9, observables=obs)
              for parallel, chains, sweeps in ((True, 128, 300), (False, 8, 300))]
    for column in ("energy", "order_parameter"):
        a, b = (t.iloc[0] for t in tables)
        dev = abs(a[column] - b[column]) / np.hypot(a[f"{column}_err"], b[f"{column}_err"])
        print(f"\n{ensemble} {column}: parallel {a[column]:.5f} +- {a[f'{column}_err']:.5f}, "
              f"serial {b[column]:.5f} +- {b[f'{column}_err']:.5f}: {dev:.2f} sigma")
        assert dev < 3.5
