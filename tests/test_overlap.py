"""The overlap distribution P(q): exact (Walsh-Hadamard autocorrelation) against brute force over
all replica pairs; parallel tempering and importance-weighted samples against the exact P(q) by
a chi-square test that must also reject a wrong temperature."""

import numpy as np
import pytest
import torch

from lattherm.exact.enumeration import _moments, configurations, enumerate_energies
from lattherm.exact.overlap import (exact_overlap_table, overlap_distribution, overlap_values, susceptibility,
                                    walsh_hadamard)
from lattherm.hamiltonians.ising import EdwardsAnderson, SherringtonKirkpatrick
from lattherm.lattices import make_lattice
from lattherm.mcmc.samplers import overlap_tempering
from lattherm.sampling.overlap import (chi_square_test, histogram_errors, kish_count, overlap_bins,
                                       overlap_histogram, pair_log_weights)
from lattherm.systems import build_system


def test_walsh_hadamard_is_the_hadamard_matrix():
    n = 3
    k, a = np.indices((1 << n, 1 << n))
    parity = np.vectorize(lambda v: bin(v).count("1") % 2)(k & a)
    matrix = (-1.0) ** parity
    v = np.random.default_rng(0).normal(size=1 << n)
    np.testing.assert_allclose(walsh_hadamard(v), matrix @ v, atol=1e-13)
    np.testing.assert_allclose(walsh_hadamard(walsh_hadamard(v)), (1 << n) * v, atol=1e-12)


def _brute_force_distribution(hamiltonian, beta):
    """P(d) summed over every ordered pair of configurations (a, b): p(a) p(b) at d(a, b)."""
    energies, _ = enumerate_energies(hamiltonian)
    p = _moments(energies, beta)[3]
    n = hamiltonian.n_sites
    x = configurations(n, 0, 1 << n).numpy()
    distance = (x[:, None, :] != x[None, :, :]).sum(axis=2)
    return np.bincount(distance.ravel(), weights=np.outer(p, p).ravel(), minlength=n + 1), p, x


@pytest.mark.parametrize("hamiltonian", [EdwardsAnderson(make_lattice("square", (2, 4)), seed=3),
                                         EdwardsAnderson(make_lattice("square", (2, 4)), seed=5, couplings="gaussian"),
                                         SherringtonKirkpatrick(8, seed=2)], ids=["ea_pm_j", "ea_gaussian", "sk"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
def test_exact_overlap_distribution_matches_all_pairs(hamiltonian, beta):
    expected, p, x = _brute_force_distribution(hamiltonian, beta)
    _, n_ones = enumerate_energies(hamiltonian)
    got = overlap_distribution(p, n_ones, hamiltonian.n_sites)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)
    # chi_SG = N <q^2> = sum_ij <s_i s_j>^2 / N, from the exact spin correlations
    s = 2.0 * x - 1.0
    correlations = (s * p[:, None]).T @ s
    n = hamiltonian.n_sites
    assert susceptibility(got, n) == pytest.approx(np.sum(correlations**2) / n, rel=1e-12)
    if beta == 0.0:  # independent fair coins: d ~ Binomial(N, 1/2)
        from scipy.stats import binom
        np.testing.assert_allclose(got, binom.pmf(np.arange(n + 1), n, 0.5), atol=1e-15)


def test_exact_overlap_table_layout():
    table = exact_overlap_table(SherringtonKirkpatrick(6, seed=1), [0.5, 1.0])
    assert list(table.columns) == ["beta", "q", "probability", "chi_sg"]
    assert len(table) == 14
    for _, rows in table.groupby("beta"):
        assert rows.probability.sum() == pytest.approx(1.0, abs=1e-14)
        np.testing.assert_allclose(rows.q, overlap_values(6))
        # zero field: P(q) = P(-q)
        np.testing.assert_allclose(rows.probability.to_numpy(), rows.probability.to_numpy()[::-1], atol=1e-15)


def test_overlap_bins_and_histogram():
    np.testing.assert_array_equal(overlap_bins([1.0, 0.5, -1.0], 4), [0, 1, 4])
    with pytest.raises(ValueError, match="whole d"):
        overlap_bins([0.3], 4)
    hist = overlap_histogram([1.0, 1.0, -1.0], 2, log_weights=np.log([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(hist, [0.5, 0.0, 0.5])
    np.testing.assert_allclose(pair_log_weights([1.0, 2.0, 3.0, 4.0, 5.0]), [3.0, 7.0])
    assert kish_count(np.zeros(10)) == pytest.approx(10.0)
    np.testing.assert_allclose(histogram_errors([0.5, 0.0, 0.5], 100.0), [0.05, 0.0, 0.05])


def test_chi_square_accepts_its_own_distribution_and_rejects_another():
    rng = np.random.default_rng(1)
    expected = np.array([0.05, 0.2, 0.5, 0.2, 0.05])
    draws = rng.choice(5, size=4000, p=expected)
    observed = np.bincount(draws, minlength=5) / 4000
    assert chi_square_test(observed, 4000, expected).p_value > 1e-3
    shifted = np.array([0.1, 0.25, 0.3, 0.25, 0.1])
    assert chi_square_test(observed, 4000, shifted).p_value < 1e-10
    # bins expecting fewer than 5 draws are pooled with their neighbours
    assert chi_square_test(observed, 40, expected).dof < 4


SPIN_GLASS = {"model": "edwards_anderson", "lattice": "square", "couplings": "pm_j", "coupling_seed": 1,
              "train_size": [4, 4], "temperatures": [1.0, 2.0],
              "mcmc": {"temperatures": [5.0, 2.0, 1.5, 1.0], "chains": 16, "sweeps": 1200, "burn_in": 200}}


@pytest.fixture(scope="module")
def tempering_run():
    system = build_system(SPIN_GLASS, name="spin_glass")
    exact = exact_overlap_table(system.hamiltonian, [system.beta(t) for t in SPIN_GLASS["mcmc"]["temperatures"]])
    return system, *overlap_tempering(system, seed=0), exact


def test_parallel_tempering_overlaps_match_exact(tempering_run):
    system, histograms, summary, exact = tempering_run
    assert list(summary.temperature) == [5.0, 2.0, 1.5, 1.0]
    for t, beta in zip(summary.temperature, summary.beta):
        got = histograms[histograms.temperature == t]
        want = exact[np.isclose(exact.beta, beta)].probability.to_numpy()
        result = chi_square_test(got.probability.to_numpy(), got.n_eff.iloc[0], want)
        assert result.p_value > 1e-3, (t, result)
        row = summary[summary.temperature == t].iloc[0]
        assert abs(row.chi_sg - susceptibility(want, 16)) < 4 * row.chi_sg_err
        assert row.halves_sigma < 4  # equilibrated: both halves of the run agree
    assert summary.round_trips.iloc[0] > 10 and 0 < summary.round_trip_sweeps.iloc[0] < 1000
    acceptance = summary.exchange_acceptance_colder.to_numpy()
    assert np.all((acceptance[:-1] > 0.05) & (acceptance[:-1] < 1)) and np.isnan(acceptance[-1])


def test_parallel_tempering_overlaps_reject_a_wrong_temperature(tempering_run):
    system, histograms, summary, exact = tempering_run
    got = histograms[histograms.temperature == 1.0]
    wrong = exact[np.isclose(exact.beta, system.beta(2.0))].probability.to_numpy()
    assert chi_square_test(got.probability.to_numpy(), got.n_eff.iloc[0], wrong).p_value < 1e-6


def test_importance_weighted_pairs_recover_the_target():
    """Exact draws at beta = 0.5 weighted to beta = 1 give the beta = 1 P(q); unweighted they do not."""
    hamiltonian = EdwardsAnderson(make_lattice("square", (4, 4)), seed=1)
    energies, n_ones = enumerate_energies(hamiltonian)
    proposal = _moments(energies, 0.5)[3]
    rng = np.random.default_rng(2)
    index = rng.choice(len(proposal), size=40000, p=proposal)
    x = configurations(16, 0, 1 << 16)[torch.as_tensor(index)]
    from lattherm.observables import overlap
    q = overlap(x[0::2], x[1::2]).numpy()
    log_w = -1.0 * energies[index] - np.log(proposal[index])
    pairs = pair_log_weights(log_w)
    target = overlap_distribution(_moments(energies, 1.0)[3], n_ones, 16)
    weighted = overlap_histogram(q, 16, pairs)
    assert chi_square_test(weighted, kish_count(pairs), target).p_value > 1e-3
    assert chi_square_test(overlap_histogram(q, 16), len(q), target).p_value < 1e-6


def test_tempering_needs_paired_chains():
    block = dict(SPIN_GLASS, mcmc=dict(SPIN_GLASS["mcmc"], chains=15))
    with pytest.raises(ValueError, match="mcmc.chains must be even"):
        overlap_tempering(build_system(block, name="odd"))


def test_partner_overlap_pairs_rows():
    from lattherm.mcmc.samplers import partner_overlap
    x = torch.tensor([[0, 0], [1, 1], [0, 1], [0, 1]])
    np.testing.assert_allclose(partner_overlap(x).numpy(), [-1.0, -1.0, 1.0, 1.0])


def test_trained_sampler_overlaps_match_exact():
    """A briefly trained MADE on an 8-site glass: its importance-weighted P(q) passes against the
    exact P(q) at its temperature and fails against the P(q) of a temperature 1.5 times higher."""
    from lattherm.models import build_model
    from lattherm.sampling.overlap import sampler_overlaps
    from lattherm.training import TrainConfig, train

    torch.manual_seed(0)
    system = build_system({"model": "edwards_anderson", "lattice": "square", "coupling_seed": 4,
                           "train_size": [2, 4], "temperatures": [1.0]}, name="glass8")
    model = build_model({"kind": "made", "width": 4, "depth": 2, "z2_symmetric": True}, system.lattice)
    train(model, system, TrainConfig(steps=150, batch_size=256, lr=0.01, anneal=0.95, temperature=1.0), progress=False)
    distribution, n_eff = sampler_overlaps(model, system, 1.0, 20000, seed=1)
    assert n_eff > 2000
    exact = exact_overlap_table(system.hamiltonian, [1.0, 1.0 / 1.5])
    at = {beta: rows.probability.to_numpy() for beta, rows in exact.groupby("beta")}
    assert chi_square_test(distribution, n_eff, at[1.0]).p_value > 1e-3
    assert chi_square_test(distribution, n_eff, at[1.0 / 1.5]).p_value < 1e-6


def test_overlap_commands_write_exact_tempering_and_sampler_tables(tmp_path):
    """`exact overlap`, `mcmc tempering` and `neural overlap` on a 9-site glass: tables that say what
    they are, and whose P(q) agree with the exact one."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from lattherm.cli import app

    block = {"model": "edwards_anderson", "lattice": "square", "coupling_seed": 2, "train_size": [3, 3],
             "temperatures": [1.0], "neural_temperatures": [1.0],
             "mcmc": {"temperatures": [3.0, 1.0], "chains": 8, "sweeps": 400, "burn_in": 100}}
    (tmp_path / "glass.json").write_text(json.dumps(block))
    (tmp_path / "made.json").write_text(json.dumps({"kind": "made", "width": 2, "depth": 1, "z2_symmetric": True}))
    (tmp_path / "train.json").write_text(json.dumps({"steps": 100, "batch_size": 128, "lr": 0.01, "anneal": 0.9,
                                                         "temperature": 1.0}))
    runner = CliRunner()
    system = str(tmp_path / "glass.json")
    for args in (["exact", "overlap", "--system", system, "--out", str(tmp_path / "exact.csv")],
                 ["mcmc", "tempering", "--system", system, "--out", str(tmp_path / "pt.csv"),
                  "--out-summary", str(tmp_path / "pt_summary.csv")],
                 ["neural", "train", "--system", system, "--model", str(tmp_path / "made.json"),
                  "--training", str(tmp_path / "train.json"), "--out-dir", str(tmp_path / "run")],
                 ["neural", "overlap", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--system", system,
                  "--samples", "2000", "--method", "made", "--out", str(tmp_path / "made.csv")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    exact, pt, made = (pd.read_csv(tmp_path / f"{name}.csv") for name in ("exact", "pt", "made"))
    assert list(exact.columns[:4]) == ["system", "method", "size", "temperature"] and set(exact.method) == {"enumeration"}
    assert sorted(set(exact.temperature)) == [1.0, 3.0] and len(exact) == 20
    assert set(pt.method) == {"parallel_tempering"} and set(made.method) == {"made"} and set(made.temperature) == {1.0}
    for name, table in (("parallel tempering", pt), ("made", made)):
        got = table[table.temperature == 1.0]
        assert got.n_eff.iloc[0] > 100, name
        want = exact[exact.temperature == 1.0].probability.to_numpy()
        assert chi_square_test(got.probability.to_numpy(), got.n_eff.iloc[0], want).p_value > 1e-3, name
    summary = pd.read_csv(tmp_path / "pt_summary.csv")
    assert list(summary.temperature) == [3.0, 1.0] and 0 < summary.exchange_acceptance_colder.iloc[0] < 1


def test_sk_sampler_without_a_lattice(tmp_path):
    """SK has no lattice: MADE (with the local fields in its logits) is built on the site count,
    trained, checkpointed, reloaded and evaluated through the CLI; its importance-sampled F lies
    within 4 sigma of enumeration and its P(q) passes against the exact one. A transformer
    whose encodings are geometric, is refused with one line."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from lattherm.cli import app
    from lattherm.exact.enumeration import exact_thermo
    from lattherm.models import build_model

    block = {"model": "sherrington_kirkpatrick", "train_size": [10], "coupling_seed": 3, "temperatures": [0.5]}
    (tmp_path / "sk.json").write_text(json.dumps(block))
    (tmp_path / "made.json").write_text(json.dumps({"kind": "made", "width": 2, "depth": 2, "z2_symmetric": "auto",
                                                    "physics_logits": True}))
    (tmp_path / "train.json").write_text(json.dumps({"steps": 100, "batch_size": 128, "lr": 0.01, "anneal": 0.9,
                                                     "temperature": 0.5}))
    runner = CliRunner()
    system, checkpoint = str(tmp_path / "sk.json"), str(tmp_path / "run" / "checkpoint.pt")
    for args in (["neural", "train", "--system", system, "--model", str(tmp_path / "made.json"),
                  "--training", str(tmp_path / "train.json"), "--out-dir", str(tmp_path / "run")],
                 ["neural", "sample", "--checkpoint", checkpoint, "--system", system, "--samples", "4000",
                  "--mcmc-steps", "20", "--out", str(tmp_path / "samples.csv")],
                 ["neural", "overlap", "--checkpoint", checkpoint, "--system", system, "--samples", "4000",
                  "--out", str(tmp_path / "overlap.csv")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    sk = build_system(block, name="sk")
    exact_f = float(exact_thermo(sk.hamiltonian, [2.0]).free_energy.iloc[0])
    row = pd.read_csv(tmp_path / "samples.csv").iloc[0]
    assert row.z2_symmetric and row.n_sites == 10 and row.ess > 0.5
    assert abs(row.free_energy - exact_f) < 4 * row.free_energy_err, (row.free_energy, row.free_energy_err, exact_f)
    got = pd.read_csv(tmp_path / "overlap.csv")
    exact = exact_overlap_table(sk.hamiltonian, [2.0]).probability.to_numpy()
    assert chi_square_test(got.probability.to_numpy(), got.n_eff.iloc[0], exact).p_value > 1e-3
    with pytest.raises(ValueError, match="without a lattice has no geometry to encode: set n_freq: 0"):
        build_model({"kind": "transformer"}, sk.cell)


def test_canonical_glass_overlaps():
    """Replicas at fixed magnetisation (half filling): the exact P(q) against all pairs of allowed
    configurations, and swap-move parallel tempering against it."""
    hamiltonian = EdwardsAnderson(make_lattice("square", (2, 4)), seed=3)
    energies, n_ones = enumerate_energies(hamiltonian)
    allowed = n_ones == 4
    p = np.zeros(len(energies))
    p[allowed] = _moments(energies[allowed], 1.0)[3]
    x = configurations(8, 0, 256).numpy()
    distance = (x[:, None, :] != x[None, :, :]).sum(axis=2)
    expected = np.bincount(distance.ravel(), weights=np.outer(p, p).ravel(), minlength=9)
    table = exact_overlap_table(hamiltonian, [1.0], canonical_n_ones=4)
    np.testing.assert_allclose(table.probability, expected, atol=1e-15)
    assert np.all(table.probability.to_numpy()[1::2] < 1e-15)  # swaps change the Hamming distance by 2
    block = {"model": "edwards_anderson", "lattice": "square", "coupling_seed": 3, "train_size": [2, 4],
             "ensemble": "canonical", "concentration": 0.5, "temperatures": [1.0],
             "mcmc": {"temperatures": [3.0, 1.0], "chains": 8, "sweeps": 600, "burn_in": 100}}
    histograms, _ = overlap_tempering(build_system(block, name="canonical_glass"), seed=1)
    got = histograms[histograms.temperature == 1.0]
    assert chi_square_test(got.probability.to_numpy(), got.n_eff.iloc[0], expected).p_value > 1e-3


def test_round_trips_count_hot_cold_hot_journeys():
    """Two temperatures whose exchanges are always accepted (beta 0 and 1e-12): the pair is tried
    every other sweep, so each walker goes hot -> cold -> hot in exactly 4 sweeps; and one walker
    moved by hand up a three-temperature ladder and back."""
    from lattherm.mcmc.samplers import RoundTrips, parallel_tempering

    hamiltonian = EdwardsAnderson(make_lattice("square", (2, 4)), seed=3)
    free = parallel_tempering(hamiltonian, [0.0, 1e-12], 4, 400, observables={})
    assert free.exchange_acceptance.tolist() == [1.0]
    assert free.round_trips == pytest.approx(8 * 400 / 4, abs=8)  # 8 walkers, 100 trips each (ends not finished)
    walkers = RoundTrips(3, 1, "cpu")  # one chain, three temperatures: walk walker 0 up and down by hand
    for pair in ([True, False], [False, True], [False, True], [True, False]):
        walkers.exchange(torch.tensor(pair)[:, None])
    assert walkers.holder.tolist() == [0, 1, 2] and walkers.trips.tolist() == [1, 0, 0]
