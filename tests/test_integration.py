"""Thermodynamic integration against exact ln Z: enumeration (16-site CuAu CE, canonical and
semi-grand), Kaufman (4x4 and 8x8 Ising), and MCMC energies with their error bars."""

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner
from scipy.special import comb

from lattherm import K_B_EV
from lattherm.ce.published import published_cluster_expansion
from lattherm.cli import app
from lattherm.exact.enumeration import exact_thermo
from lattherm.exact.kaufman import ising_thermo
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.hamiltonians.ising import Ising
from lattherm.io import read_table
from lattherm.lattices import make_lattice
from lattherm.mcmc.integration import integrate_free_energy, reference_log_z
from lattherm.mcmc.samplers import scan


@pytest.fixture(scope="module")
def cuau16():
    return ClusterExpansionHamiltonian(published_cluster_expansion(), make_lattice("fcc", (2, 2, 4), a=3.8))


def test_reference_log_z():
    assert reference_log_z(16) == pytest.approx(16 * np.log(2))
    assert reference_log_z(16, 8) == pytest.approx(np.log(comb(16, 8, exact=True)), rel=1e-14)
    with pytest.raises(ValueError, match="n_ones"):
        reference_log_z(16, 17)


def ti_error(exact, betas, n_sites, n_ones=None, method="spline"):
    table = integrate_free_energy(betas, exact.energy, n_sites, n_ones=n_ones, method=method)
    return np.max(np.abs(table.log_z.to_numpy() - exact.log_z.to_numpy()[1:]))


def test_ising_4x4_exact_energies_reproduce_log_z_with_expected_convergence():
    errors = {}
    for method in ("trapezoid", "spline"):
        for n in (21, 41):
            betas = np.linspace(0.0, 0.8, n)
            errors[method, n] = ti_error(ising_thermo(4, 4, betas), betas, 16, method=method)
    assert errors["spline", 41] < 1e-5
    # halving the step: the trapezoid error falls ~4x (h^2), the cubic spline's ~16x (h^4)
    assert 3.5 < errors["trapezoid", 21] / errors["trapezoid", 41] < 4.5
    assert errors["spline", 21] / errors["spline", 41] > 10


@pytest.mark.parametrize("ensemble", ["canonical", "semi_grand"])
def test_cuau_16_exact_energies_reproduce_enumerated_log_z(cuau16, ensemble):
    betas = np.linspace(0.0, 1.0 / (K_B_EV * 300.0), 81)  # down to 300 K
    if ensemble == "canonical":
        exact = exact_thermo(cuau16, betas, n_ones=8)
        error = ti_error(exact, betas, 16, n_ones=8)
    else:
        exact = exact_thermo(SemiGrand(cuau16, 0.02), betas)
        error = ti_error(exact, betas, 16)
    print(f"\nCuAu-16 {ensemble}: max |ln Z_TI - ln Z_exact| = {error:.2e}")
    assert error < 1e-4


def test_mcmc_energies_integrate_to_kaufman_within_error():
    betas = np.linspace(0.0, 0.6, 13)
    table = scan(Ising(make_lattice("square", 8)), betas, n_chains=32, n_sweeps=300, burn_in=50, seed=21)
    ti = integrate_free_energy(table.beta, table.energy, 64, energy_errors=table.energy_err)
    exact = ising_thermo(8, 8, betas)
    # the quadrature error on this grid, from Kaufman's exact energies, bounds the bias
    quadrature = np.abs(integrate_free_energy(betas, exact.energy, 64).log_z.to_numpy() - exact.log_z.to_numpy()[1:])
    deviation = np.abs(ti.log_z.to_numpy() - exact.log_z.to_numpy()[1:])
    print(f"\nL=8 TI: |ln Z_MC - ln Z_exact| / sigma = {np.round(deviation / ti.log_z_err.to_numpy(), 2)}, "
          f"quadrature error <= {quadrature.max():.1e}")
    assert np.all(deviation < 3 * ti.log_z_err.to_numpy() + quadrature)
    assert np.all(ti.log_z_err > 0)
    np.testing.assert_allclose(ti.free_energy, -ti.log_z / ti.beta)


def test_bad_grid_raises():
    with pytest.raises(ValueError, match="start at 0"):
        integrate_free_energy([0.1, 0.2], [1.0, 2.0], 4)
    with pytest.raises(ValueError, match="equal length"):
        integrate_free_energy([0.0, 0.2], [1.0], 4)
    with pytest.raises(ValueError, match="method"):
        integrate_free_energy([0.0, 0.2], [1.0, 2.0], 4, method="simpson")


def test_cli_run_then_integrate_matches_kaufman(tmp_path):
    block = {"model": "ising", "lattice": "square", "train_size": [4, 4],
             "mcmc": {"temperatures": [10.0, 5.0, 10 / 3, 2.5], "move": "flip", "chains": 16, "sweeps": 300,
                      "burn_in": 30}}
    system = tmp_path / "ising.yaml"
    system.write_text(yaml.safe_dump(block))
    runner = CliRunner()
    table, samples = tmp_path / "run.csv", tmp_path / "samples.parquet"
    result = runner.invoke(app, ["mcmc", "run", "--system", str(system), "--seed", "0", "--out", str(table),
                                 "--out-samples", str(samples)])
    assert result.exit_code == 0, result.output
    scan = read_table(table)
    betas = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(scan.beta, betas, rtol=1e-15)  # from T = inf down the mcmc block's grid
    assert set(scan.system) == {"ising"} and set(scan["size"]) == {"4x4"} and set(scan.move) == {"flip"}
    exact = ising_thermo(4, 4, scan.beta.to_numpy())
    # MBAR over the recorded energies (the default): no quadrature error
    free = tmp_path / "free.csv"
    result = runner.invoke(app, ["mcmc", "integrate", "--table", str(table), "--samples", str(samples),
                                 "--out", str(free)])
    assert result.exit_code == 0, result.output
    mbar = read_table(free)
    assert set(mbar.free_energy_estimator) == {"mbar"} and len(mbar) == 4
    assert np.all(np.abs(mbar.log_z - exact.log_z.to_numpy()[1:]) < 3 * mbar.log_z_err)
    # thermodynamic integration of <E>(beta) on the grid: within its error bars and quadrature error
    result = runner.invoke(app, ["mcmc", "integrate", "--table", str(table), "--estimator", "spline",
                                 "--out", str(free)])
    assert result.exit_code == 0, result.output
    ti = read_table(free)
    assert set(ti.free_energy_estimator) == {"spline"}
    quadrature = np.abs(integrate_free_energy(betas, exact.energy, 16).log_z.to_numpy() - exact.log_z.to_numpy()[1:])
    assert np.all(np.abs(ti.log_z - exact.log_z.to_numpy()[1:]) < 3 * ti.log_z_err + quadrature)
    # a semi-grand system cannot use swaps (they keep the composition fixed)
    system.write_text(yaml.safe_dump({**block, "mcmc": {**block["mcmc"], "move": "swap"}}))
    bad = runner.invoke(app, ["mcmc", "run", "--system", str(system), "--out", str(tmp_path / "bad.csv")])
    assert bad.exit_code != 0 and "swap" in str(bad.exception)
    assert not (tmp_path / "bad.csv").exists()
