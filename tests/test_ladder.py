"""Tuned parallel-tempering ladders (lattherm.mcmc.ladder) and their use in the spin-glass references."""

import math

import numpy as np
import pytest

from lattherm.exact.enumeration import exact_thermo
from lattherm.exact.overlap import exact_overlap_table
from lattherm.mcmc.ladder import place_rungs, tuned_ladder
from lattherm.mcmc.mbar import mbar_scan
from lattherm.mcmc.samplers import overlap_tempering, parallel_tempering, reference_scan
from lattherm.sampling.overlap import chi_square_test
from lattherm.systems import build_system


def test_rungs_are_equally_spaced_in_thermodynamic_length():
    """With sigma_E(beta) = 1 + beta^2 (length beta + beta^3 / 3), the grid stays in the ladder,
    each segment's steps are equal in length, and the rungs go where the length is: the
    allocation equalises steps across segments up to one rung's rounding."""
    betas = np.linspace(0, 3, 3001)
    grid = [0.0, 1.0, 3.0]
    ladder = place_rungs(grid, betas, 1 + betas**2, 10)
    assert len(ladder) == 10 and np.all(np.diff(ladder) > 0) and set(grid) <= set(ladder)
    length = ladder + ladder**3 / 3
    steps = np.diff(length)
    cold = ladder[:-1] >= 1.0
    for segment in (steps[~cold], steps[cold]):
        np.testing.assert_allclose(segment, segment.mean(), rtol=1e-4)
    assert cold.sum() == 8 and steps.max() / steps.min() < 1.01  # lengths 4/3 and 32/3: 1 and 8 equal steps
    np.testing.assert_array_equal(place_rungs(grid, betas, 1 + betas**2, 3), grid)
    with pytest.raises(ValueError, match="cannot hold the 3 grid temperatures"):
        place_rungs(grid, betas, 1 + betas**2, 2)


def test_tuned_ladder_flattens_the_exchange_acceptance():
    """EA 8x8 +-J from T = 20 to 0.5 on 8 rungs: uniform in beta, the hot pairs exchange in 3%
    of attempts and walkers barely cross; the tuned ladder lifts the worst pair above 0.2,
    keeps the profile within a factor 2, and multiplies the round trips."""
    system = build_system({"model": "edwards_anderson", "lattice": "square", "couplings": "pm_j",
                           "train_size": [8, 8], "coupling_seed": 1})
    grid = np.array([0.05, 2.0])
    uniform = place_rungs(grid, grid, np.ones(2), 8)
    tuned = tuned_ladder(system.hamiltonian, grid, 8, 8, 256, seed=0)
    assert tuned[0] == grid[0] and tuned[-1] == grid[-1] and np.all(np.diff(tuned) > 0)
    before, after = (parallel_tempering(system.hamiltonian, ladder, 8, 600, burn_in=100, progress=False, seed=7)
                     for ladder in (uniform, tuned))
    assert before.exchange_acceptance.min() < 0.1 < 0.2 < after.exchange_acceptance.min()
    assert after.exchange_acceptance.max() < 2 * after.exchange_acceptance.min()
    assert after.round_trips > 3 * before.round_trips


GLASS = {"model": "edwards_anderson", "lattice": "square", "couplings": "pm_j", "coupling_seed": 2,
         "train_size": [4, 4], "temperatures": [0.5]}


def test_tuned_reference_scan_keeps_its_grid_and_stays_exact():
    """With mcmc.rungs the glass's scan runs over the tuned ladder (rows at every rung, the
    configured ones marked on_grid); MBAR over all rungs gives F at the grid temperatures only,
    within 3 sigma of enumeration."""
    temperatures = [20.0, 3.0, 1.0, 0.5]
    system = build_system({**GLASS, "mcmc": {"temperatures": temperatures, "chains": 16, "sweeps": 600,
                                             "burn_in": 100, "rungs": 9}})
    table, samples = reference_scan(system, seed=1)
    assert len(table) == 10 and table.on_grid.sum() == 5 and math.isinf(table.temperature.iloc[0])
    assert list(table.temperature[table.on_grid])[1:] == temperatures
    fe = mbar_scan(table, samples, "scan")
    assert list(fe.temperature) == temperatures
    exact = exact_thermo(system.hamiltonian, fe.beta.to_numpy()).free_energy.to_numpy() / system.n_sites
    z = (fe.free_energy_per_site.to_numpy() - exact) / fe.free_energy_per_site_err.to_numpy()
    assert np.all(np.abs(z) < 3), z


def test_tuned_overlap_tempering_reports_every_rung_and_p_of_q_on_the_grid():
    temperatures = [5.0, 2.0, 1.0]
    system = build_system({**GLASS, "mcmc": {"temperatures": temperatures, "chains": 16, "sweeps": 1200,
                                             "burn_in": 200, "rungs": 6}})
    histograms, summary = overlap_tempering(system, seed=0)
    assert len(summary) == 6 and list(summary.temperature[summary.on_grid]) == temperatures
    assert sorted(histograms.temperature.unique(), reverse=True) == temperatures
    exact = exact_overlap_table(system.hamiltonian, [system.beta(t) for t in temperatures])
    for t, beta in zip(temperatures, [system.beta(t) for t in temperatures]):
        got = histograms[histograms.temperature == t]
        want = exact[np.isclose(exact.beta, beta)].probability.to_numpy()
        assert chi_square_test(got.probability.to_numpy(), got.n_eff.iloc[0], want).p_value > 1e-3, t
    assert summary.exchange_acceptance_colder.iloc[:-1].min() > 0.2
