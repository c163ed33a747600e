"""MBAR free energies of temperature scans against exact ln Z: exact Boltzmann samples drawn by
enumeration (4x4 Ising, 16-site canonical CuAu), the calibration of the error bar over
repeats, the batched-MCMC reference scan, and the `mcmc integrate` command."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lattherm import K_B_EV
from lattherm.ce.published import published_cluster_expansion
from lattherm.errors import LatthermError
from lattherm.cli import app
from lattherm.exact.enumeration import enumerate_energies
from lattherm.exact.kaufman import ising_thermo
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.hamiltonians.ising import Ising
from lattherm.io import read_table, write_table
from lattherm.lattices import make_lattice
from lattherm.mcmc.integration import integrate_free_energy, reference_log_z
from lattherm.mcmc.mbar import _mbar, jackknife_error, mbar_log_z, mbar_scan
from lattherm.mcmc.samplers import reference_scan, scan_with_samples
from lattherm.systems import build_system

COARSE = np.array([0.0, 0.2, 0.44, 0.7, 1.0])  # too coarse for quadrature: errors up to 0.23 in ln Z


@pytest.fixture(scope="module")
def ising16():
    return enumerate_energies(Ising(make_lattice("square", 4)))[0]


def exact_chains(energies, betas, n, rng, n_chains=8):
    """Independent exact Boltzmann samples of the enumerated energies at each beta."""
    chains = []
    for beta in betas:
        w = np.exp(-beta * (energies - energies.min()))
        chains.append(rng.choice(energies, size=(n_chains, n // n_chains), p=w / w.sum()))
    return chains


def exact_log_z(energies, betas):
    return np.array([np.logaddexp.reduce(-b * energies) for b in betas])


def test_mbar_on_exact_samples_has_no_quadrature_error(ising16):
    """On a grid where integrating <E>(beta) is biased by many sigma, MBAR of exact samples
    agrees with ln Z within its error bar, which is what the samples allow."""
    rng = np.random.default_rng(0)
    log_z, err = mbar_log_z(COARSE, exact_chains(ising16, COARSE, 4000, rng), reference_log_z(16))
    exact = exact_log_z(ising16, COARSE)
    assert np.all(np.abs(log_z - exact)[1:] < 3 * err[1:])
    assert err[0] == 0 and np.all(err[1:] < 0.05)
    energies = [np.average(ising16, weights=np.exp(-b * (ising16 - ising16.min()))) for b in COARSE]
    quadrature = integrate_free_energy(COARSE, energies, 16).log_z.to_numpy() - exact[1:]
    assert np.max(np.abs(quadrature) / err[1:]) > 10  # exact energies, and still 17 sigma off at beta = 0.2


def test_mbar_error_bar_is_calibrated(ising16):
    """Over independent repeats the deviations from exact ln Z are z-scores of unit spread."""
    rng = np.random.default_rng(1)
    exact = exact_log_z(ising16, COARSE)
    z = []
    for _ in range(24):
        log_z, err = mbar_log_z(COARSE, exact_chains(ising16, COARSE, 1000, rng), reference_log_z(16))
        z.append((log_z - exact)[1:] / err[1:])
    z = np.array(z)
    assert 0.7 < z.std() < 1.4 and abs(z.mean()) < 0.5


def test_jackknife_error_is_calibrated_where_records_are_correlated(ising16):
    """Exact samples repeated 4x within each chain (a correlation that thinning by the energy's
    tau_int would miss, like walkers of parallel tempering): MBAR's asymptotic bar takes them as
    independent and is 2x too small; with the jackknife over chains the z-scores have unit spread."""
    rng = np.random.default_rng(5)
    exact = exact_log_z(ising16, COARSE)
    z_asymptotic, z_jackknife = [], []
    for _ in range(24):
        chains = [np.repeat(c, 4, axis=1) for c in exact_chains(ising16, COARSE, 1280, rng, n_chains=16)]
        log_z, err = mbar_log_z(COARSE, chains, reference_log_z(16))
        z_asymptotic.append((log_z - exact)[1:] / err[1:])
        log_z, err = mbar_log_z(COARSE, chains, reference_log_z(16), over_chains=True)
        z_jackknife.append((log_z - exact)[1:] / err[1:])
    assert np.std(z_asymptotic) > 1.6
    assert 0.8 < np.std(z_jackknife) < 1.3 and abs(np.mean(z_jackknife)) < 0.5


def test_jackknife_newton_step_matches_a_full_resolve(ising16):
    """Each left-out group's one Newton step from the full solution lands within 1e-3 of the
    shift a fresh MBAR solve of the remaining chains gives; the scan's bar is the larger of the
    jackknife and the asymptotic one."""
    chains = exact_chains(ising16, COARSE, 4000, np.random.default_rng(6), n_chains=16)
    err = jackknife_error(COARSE, chains, _mbar(COARSE, chains).f_k)
    full, asymptotic = mbar_log_z(COARSE, chains, 0.0)
    assert err[0] == 0
    shifts = np.array([mbar_log_z(COARSE, [np.delete(c, i, axis=0) for c in chains], 0.0)[0] - full for i in range(16)])
    resolved = np.sqrt(15 / 16 * ((shifts - shifts.mean(axis=0)) ** 2).sum(axis=0))
    np.testing.assert_allclose(err, resolved, rtol=1e-3)
    log_z, scan_err = mbar_log_z(COARSE, chains, 0.0, over_chains=True)
    assert np.array_equal(log_z, full) and np.array_equal(scan_err, np.maximum(err, asymptotic))


def test_jackknife_needs_equal_chains_per_temperature(ising16):
    chains = exact_chains(ising16, COARSE, 800, np.random.default_rng(7), n_chains=8)
    with pytest.raises(LatthermError, match="same number"):
        mbar_log_z(COARSE, [chains[0][:4], *chains[1:]], 0.0, over_chains=True)


def test_mbar_canonical_cluster_expansion():
    """Canonical 16-site CuAu (8 Au): beta = 0 is the uniform distribution over C(16, 8) states."""
    ham = ClusterExpansionHamiltonian(published_cluster_expansion(), make_lattice("fcc", (2, 2, 4), a=3.8))
    energies, n_ones = enumerate_energies(ham)
    energies = energies[n_ones == 8]
    betas = np.array([0.0] + [1 / (K_B_EV * t) for t in (4000.0, 1500.0, 800.0, 500.0)])
    log_z, err = mbar_log_z(betas, exact_chains(energies, betas, 4000, np.random.default_rng(2)), reference_log_z(16, 8))
    exact = exact_log_z(energies, betas)
    assert np.all(np.abs(log_z - exact)[1:] < 3 * err[1:]) and np.all(err[1:] < 0.05)


def test_mcmc_reference_scan_free_energies_agree_with_kaufman():
    """The workflow's path: a batched-MCMC scan of 4x4 Ising and its recorded energies give MBAR
    free energies within 3 sigma of Kaufman at every temperature, with errors near the
    statistical limit of the run."""
    temperatures = [20.0, 6.0, 3.6, 2.9, 2.6, 2.269, 2.0, 1.6]
    system = build_system({"model": "ising", "lattice": "square", "train_size": [4, 4], "temperatures": [2.0],
                           "mcmc": {"temperatures": temperatures, "chains": 16, "sweeps": 600, "burn_in": 100}})
    table, samples = reference_scan(system, seed=3)
    assert set(samples.columns) == {"beta", "chain", "record", "energy"} and samples.beta.nunique() == 9
    fe = mbar_scan(table, samples, "scan")
    exact = ising_thermo(4, 4, fe.beta.to_numpy()).free_energy.to_numpy() / 16
    z = (fe.free_energy_per_site.to_numpy() - exact) / fe.free_energy_per_site_err.to_numpy()
    assert np.all(np.abs(z) < 3), z
    assert np.all(fe.free_energy_per_site_err < 5e-3) and set(fe.free_energy_estimator) == {"mbar"}
    assert list(fe.temperature) == temperatures and "heat_capacity" in fe.columns


@pytest.mark.parametrize("block", [
    {"model": "edwards_anderson", "lattice": "square", "train_size": [4, 4], "coupling_seed": 2},
    {"model": "sherrington_kirkpatrick", "train_size": [16], "coupling_seed": 1}], ids=["ea_4x4", "sk_16"])
def test_spin_glass_reference_scan_is_tempered_and_exact(block):
    """A spin glass's reference scan is parallel tempering over its ladder (given in any order,
    run hot to cold from beta = 0): MBAR free energies within 3 sigma of enumeration down to
    T = 0.5, in the glass phase."""
    from lattherm.exact.enumeration import exact_thermo

    temperatures = [0.5, 20.0, 1.0, 3.0, 2.0, 0.7, 1.5]
    system = build_system({**block, "temperatures": [0.5],
                           "mcmc": {"temperatures": temperatures, "chains": 16, "sweeps": 600, "burn_in": 100}})
    table, samples = reference_scan(system, seed=4)
    assert list(table.temperature)[1:] == sorted(temperatures, reverse=True)
    fe = mbar_scan(table, samples, "scan")
    exact = exact_thermo(system.hamiltonian, fe.beta.to_numpy()).free_energy.to_numpy() / system.n_sites
    z = (fe.free_energy_per_site.to_numpy() - exact) / fe.free_energy_per_site_err.to_numpy()
    assert np.all(np.abs(z) < 3), z
    assert np.all(fe.free_energy_per_site_err < 5e-3)


def test_integrate_command_mbar_and_quadrature(tmp_path):
    ham = Ising(make_lattice("square", 4))
    betas = [0.0, 0.2, 0.44]
    table, samples = scan_with_samples(ham, betas, n_chains=8, n_sweeps=300, burn_in=50, seed=0)
    table["n_sites"] = 16
    write_table(tmp_path / "scan.csv", table)
    write_table(tmp_path / "samples.parquet", samples)
    runner = CliRunner()
    mbar = runner.invoke(app, ["mcmc", "integrate", "--table", str(tmp_path / "scan.csv"), "--samples",
                               str(tmp_path / "samples.parquet"), "--out", str(tmp_path / "mbar.csv")])
    assert mbar.exit_code == 0, mbar.output
    spline = runner.invoke(app, ["mcmc", "integrate", "--table", str(tmp_path / "scan.csv"), "--estimator", "trapezoid",
                                 "--out", str(tmp_path / "ti.csv")])
    assert spline.exit_code == 0, spline.output
    a, b = read_table(tmp_path / "mbar.csv"), read_table(tmp_path / "ti.csv")
    assert list(a.free_energy_estimator) == ["mbar"] * 2 and list(b.free_energy_estimator) == ["trapezoid"] * 2
    exact = ising_thermo(4, 4, a.beta.to_numpy()).free_energy.to_numpy() / 16
    assert np.all(np.abs(a.free_energy_per_site - exact) < 4 * a.free_energy_per_site_err)
    missing = runner.invoke(app, ["mcmc", "integrate", "--table", str(tmp_path / "scan.csv"),
                                  "--out", str(tmp_path / "x.csv")])
    assert missing.exit_code != 0 and "--samples goes with --estimator mbar" in str(missing.exception)
    other = pd.read_parquet(tmp_path / "samples.parquet")
    write_table(tmp_path / "other.parquet", other[other.beta > 0])
    mismatch = runner.invoke(app, ["mcmc", "integrate", "--table", str(tmp_path / "scan.csv"), "--samples",
                                   str(tmp_path / "other.parquet"), "--out", str(tmp_path / "y.csv")])
    assert mismatch.exit_code != 0 and "samples of" in str(mismatch.exception) and not (tmp_path / "y.csv").exists()
