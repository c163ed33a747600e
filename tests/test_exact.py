"""Exact references: Kaufman's finite-lattice Ising solution against brute-force enumeration,
Onsager's infinite lattice and low-temperature expansions; enumeration against closed forms."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.integrate import quad
from typer.testing import CliRunner

from lattherm.cli import app
from lattherm.exact.enumeration import (MAX_SITES, enumerate_energies, exact_thermo, semi_grand_scan,
                                        thermo_from_energies)
from lattherm.exact.kaufman import BETA_C, ising_log_z, ising_thermo
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.ising import EdwardsAnderson, Ising, SherringtonKirkpatrick
from lattherm.lattices import make_lattice

BETAS = [0.0, 0.05, 0.2, 0.3, 0.4, BETA_C, 0.5, 0.7, 1.0, 2.0, 5.0]
COLUMNS = ["beta", "temperature", "log_z", "free_energy", "free_energy_per_site", "energy",
           "energy_per_site", "heat_capacity", "heat_capacity_per_site"]


def onsager_log_z_per_site(K):
    """Onsager's ln Z / N of the infinite square lattice (h = 0), by quadrature."""
    k = 2.0 * math.sinh(2.0 * K) / math.cosh(2.0 * K) ** 2
    integrand = lambda t: math.log((1.0 + math.sqrt(max(0.0, 1.0 - (k * math.sin(t)) ** 2))) / 2.0)  # noqa: E731
    value, _ = quad(integrand, 0.0, math.pi, points=[math.pi / 2], epsabs=1e-14, epsrel=1e-14, limit=200)
    return math.log(2.0 * math.cosh(2.0 * K)) + value / (2.0 * math.pi)


# -- Kaufman ----------------------------------------------------------------------------------
@pytest.mark.parametrize("L1,L2,J", [(2, 2, 1.0), (3, 3, 1.0), (4, 4, 1.0), (3, 4, 1.0), (4, 3, 1.0),
                                     (2, 5, 1.0), (4, 4, 0.6)])
def test_kaufman_matches_enumeration(L1, L2, J):
    exact = exact_thermo(Ising(make_lattice("square", (L1, L2)), J=J), BETAS)
    kauf = ising_thermo(L1, L2, BETAS, J=J)
    assert list(kauf.columns) == COLUMNS
    n = L1 * L2
    np.testing.assert_allclose(kauf["log_z"], exact["log_z"], rtol=1e-13)
    np.testing.assert_allclose(kauf["energy"], exact["energy"], rtol=1e-13, atol=1e-14 * n)
    np.testing.assert_allclose(kauf["heat_capacity"], exact["heat_capacity"], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(kauf["free_energy_per_site"], exact["free_energy_per_site"], rtol=1e-12)
    np.testing.assert_allclose(ising_log_z(L1, L2, BETA_C, J), kauf["log_z"][BETAS.index(BETA_C)], rtol=1e-15)


def test_kaufman_high_temperature_limit():
    table = ising_thermo(8, 8, [0.0, 1e-9])
    np.testing.assert_allclose(table["log_z"], 64 * math.log(2.0), rtol=1e-15)
    assert table["energy"][0] == 0.0 and table["heat_capacity"][0] == 0.0
    assert np.isinf(table["temperature"][0]) and table["free_energy"][0] == -np.inf
    # E = -beta * (number of bonds) to first order in beta.
    np.testing.assert_allclose(table["energy"][1], -1e-9 * 128, rtol=1e-6)


@pytest.mark.parametrize("L", [16, 256])
def test_kaufman_low_temperature_expansion(L):
    # Two ground states; excitations: one flipped spin (cost 8J, N ways), two adjacent ones
    # (12J, 2N ways): ln Z = ln 2 + 2 beta N + N e^{-8 beta} + 2N e^{-12 beta} + O(N e^{-16 beta}).
    beta, n = 3.0, L * L
    row = ising_thermo(L, L, [beta]).iloc[0]
    x8, x12 = math.exp(-8 * beta), math.exp(-12 * beta)
    np.testing.assert_allclose(row["log_z"], math.log(2.0) + 2 * beta * n + n * (x8 + 2 * x12), rtol=1e-15)
    # E + 2N is ~1e-7 of E, so double-precision E resolves it only to ~1e-6.
    np.testing.assert_allclose(row["energy"] + 2 * n, n * (8 * x8 + 24 * x12), rtol=1e-5)
    np.testing.assert_allclose(row["heat_capacity"], beta**2 * n * (64 * x8 + 288 * x12), rtol=1e-8)


def test_kaufman_large_lattice_matches_onsager():
    L = 256
    n = L * L
    table = ising_thermo(L, L, [0.3, BETA_C, 1.0])
    assert np.all(np.isfinite(table[COLUMNS].to_numpy()))
    per_site = table["log_z"] / n
    # Away from T_c finite-size corrections are exponentially small; below T_c the two ordered
    # states add ln 2 to ln Z.
    np.testing.assert_allclose(per_site[0], onsager_log_z_per_site(0.3), rtol=1e-13)
    np.testing.assert_allclose(per_site[2] - math.log(2.0) / n, onsager_log_z_per_site(1.0), rtol=1e-13)
    # At T_c the correction is O(1/L^2).
    np.testing.assert_allclose(per_site[1], onsager_log_z_per_site(BETA_C), rtol=1e-4)
    # The specific heat per site grows like (8 / pi) beta_c^2 ln L at T_c (Onsager's log divergence).
    assert 2.5 < table["heat_capacity_per_site"][1] < 3.5


def test_kaufman_derivatives_match_finite_differences_and_are_continuous_at_tc():
    L, h = 64, 1e-5
    betas = np.array([BETA_C - h, BETA_C, BETA_C + h])
    table = ising_thermo(L, L, betas)
    log_z, energy = table["log_z"].to_numpy(), table["energy"].to_numpy()
    np.testing.assert_allclose(-(log_z[2] - log_z[0]) / (2 * h), energy[1], rtol=1e-7)
    np.testing.assert_allclose(-BETA_C**2 * (energy[2] - energy[0]) / (2 * h), table["heat_capacity"][1], rtol=1e-6)
    across = ising_thermo(L, L, [BETA_C * (1 - 1e-12), BETA_C * (1 + 1e-12)])
    np.testing.assert_allclose(across["energy"][0], across["energy"][1], rtol=1e-9)
    np.testing.assert_allclose(across["heat_capacity"][0], across["heat_capacity"][1], rtol=1e-9)


def test_kaufman_rejects_bad_input():
    with pytest.raises(ValueError, match="L1 must be an integer >= 2"):
        ising_thermo(1, 4, [0.4])
    with pytest.raises(ValueError, match="J > 0"):
        ising_thermo(4, 4, [0.4], J=-1.0)
    with pytest.raises(ValueError, match="betas"):
        ising_thermo(4, 4, [-0.1])


# -- enumeration ------------------------------------------------------------------------------
def test_free_spins_in_a_field():
    n, h = 9, 0.7
    base = Ising(make_lattice("square", 3), J=0.0)
    betas = np.array([0.0, 0.3, 1.0, 4.0])
    for H in (Ising(make_lattice("square", 3), J=0.0, h=h), SemiGrand(base, h)):
        table = exact_thermo(H, betas)
        np.testing.assert_allclose(table["log_z"], n * np.log(2 * np.cosh(betas * h)), rtol=1e-14)
        np.testing.assert_allclose(table["energy"], -n * h * np.tanh(betas * h), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(table["heat_capacity"], n * (betas * h / np.cosh(betas * h)) ** 2, rtol=1e-12)
        np.testing.assert_allclose(table["concentration"], (1 + np.tanh(betas * h)) / 2, rtol=1e-14)


def test_canonical_ensemble_counts_configurations():
    n, h = 12, 0.3
    H = Ising(make_lattice("square", (3, 4)), J=0.0, h=h)  # energy fixed by the number of ones
    for ones in (0, 5, 6, 12):
        table = exact_thermo(H, [0.0, 0.8], n_ones=ones)
        energy = -h * (2 * ones - n)
        np.testing.assert_allclose(table["log_z"], math.log(math.comb(n, ones)) - np.array([0.0, 0.8]) * energy,
                                   rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(table["energy"], energy, atol=1e-14)
        np.testing.assert_allclose(table["heat_capacity"], 0.0, atol=1e-14)
        assert np.all(table["concentration"] == ones / n)


def test_canonical_partition_functions_sum_to_the_unconstrained_one():
    H = EdwardsAnderson(make_lattice("square", 4), seed=2)
    betas = [0.2, 0.9]
    energies, ones = enumerate_energies(H)
    total = thermo_from_energies(energies, ones, H.n_sites, betas)
    parts = np.array([thermo_from_energies(energies, ones, H.n_sites, betas, canonical_n_ones=k)["log_z"]
                      for k in range(H.n_sites + 1)])
    np.testing.assert_allclose(np.logaddexp.reduce(parts, axis=0), total["log_z"], rtol=1e-13)


@pytest.mark.parametrize("H", [EdwardsAnderson(make_lattice("square", 4), seed=0),
                               SherringtonKirkpatrick(10, seed=1),
                               SemiGrand(Ising(make_lattice("square", 4), J=1.0), 0.2)],
                         ids=["EA", "SK", "semigrand"])
def test_energy_and_heat_capacity_are_derivatives_of_log_z(H):
    beta, h = 0.7, 1e-5
    table = exact_thermo(H, [beta - h, beta, beta + h])
    log_z, energy = table["log_z"].to_numpy(), table["energy"].to_numpy()
    np.testing.assert_allclose(-(log_z[2] - log_z[0]) / (2 * h), energy[1], rtol=1e-7)
    np.testing.assert_allclose(-beta**2 * (energy[2] - energy[0]) / (2 * h), table["heat_capacity"][1], rtol=1e-6)


def test_semi_grand_scan_reuses_base_energies():
    base = Ising(make_lattice("square", 3), J=1.0)
    energies, ones = enumerate_energies(base)
    dmus, betas = [-0.5, 0.0, 0.5], [0.3, 1.0]
    scan = semi_grand_scan(energies, ones, base.n_sites, betas, dmus)
    assert list(scan.columns[:2]) == ["dmu", "beta"] and len(scan) == 6
    for dmu in dmus:
        direct = exact_thermo(SemiGrand(base, dmu), betas)
        rows = scan[scan["dmu"] == dmu].reset_index(drop=True).drop(columns="dmu")
        pd.testing.assert_frame_equal(rows, direct, rtol=1e-12)
    # Up-down symmetry of the Ising model: c(-dmu) = 1 - c(dmu), and c(0) = 1/2.
    c = scan.set_index(["dmu", "beta"])["concentration"]
    np.testing.assert_allclose(c.loc[-0.5].to_numpy(), 1 - c.loc[0.5].to_numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c.loc[0.0].to_numpy(), 0.5, rtol=1e-13)


def test_enumeration_order_chunking_and_limits():
    H = Ising(make_lattice("square", 3), J=1.0, h=0.1)
    energies, ones = enumerate_energies(H)
    chunked, _ = enumerate_energies(H, chunk_size=7)
    np.testing.assert_array_equal(energies, chunked)
    index = 0b000000101  # sites 0 and 2 up
    x = torch.zeros(1, 9, dtype=torch.long)
    x[0, [0, 2]] = 1
    assert energies[index] == H(x).item() and ones[index] == 2
    with pytest.raises(ValueError, match=f"N <= {MAX_SITES}"):
        enumerate_energies(Ising(make_lattice("square", 5)))
    with pytest.raises(ValueError, match="n_ones must lie"):
        exact_thermo(H, [0.1], n_ones=10)
    with pytest.raises(ValueError, match="equal length"):
        thermo_from_energies(energies, ones[:-1], 9, [0.1])


# -- command line -----------------------------------------------------------------------------
def test_cli_reference_kaufman_and_enumeration(tmp_path):
    """`lattherm exact reference` picks the method by capability: Kaufman for the zero-field
    square ferromagnet (at its J), enumeration for a canonical cell; at the system's evaluation
    and MCMC temperatures, ascending, in the system's temperature unit."""
    runner = CliRunner()
    ising = tmp_path / "ising.yaml"
    ising.write_text(yaml.safe_dump({"model": "ising", "lattice": "square", "J": 2.0, "train_size": [4, 4],
                                     "temperatures": [5.0, 4.538], "mcmc": {"temperatures": [4.0, 4.538]}}))
    out = tmp_path / "kaufman.csv"
    result = runner.invoke(app, ["exact", "reference", "--system", str(ising), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    expected = ising_thermo(4, 4, [1 / 4.0, 1 / 4.538, 1 / 5.0], J=2.0)
    np.testing.assert_allclose(table[COLUMNS].to_numpy(), expected[COLUMNS].to_numpy(), rtol=1e-14)
    assert set(table["method"]) == {"kaufman"} and set(table["system"]) == {"ising"} and set(table["size"]) == {"4x4"}
    # at J = 2, Kaufman's answer is enumeration's
    enumerated = exact_thermo(Ising(make_lattice("square", 4), J=2.0), table["beta"].to_numpy())
    np.testing.assert_allclose(table["log_z"], enumerated["log_z"], rtol=1e-12)
    # any size, not only the training cell
    out = tmp_path / "kaufman_8x8.csv"
    result = runner.invoke(app, ["exact", "reference", "--system", str(ising), "--size", "8x8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(pd.read_csv(out)["log_z"], ising_thermo(8, 8, expected["beta"], J=2.0)["log_z"], rtol=1e-14)

    system = tmp_path / "system.yaml"
    system.write_text(yaml.safe_dump({"model": "ising", "lattice": "square", "train_size": [4, 4],
                                      "ensemble": "canonical", "concentration": 0.25, "temperatures": [2.0, 2.5]}))
    out = tmp_path / "exact.csv"
    result = runner.invoke(app, ["exact", "reference", "--system", str(system), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    expected = exact_thermo(Ising(make_lattice("square", 4)), [0.5, 0.4], n_ones=4)
    np.testing.assert_allclose(table["log_z"], expected["log_z"], rtol=1e-14)
    np.testing.assert_allclose(table["temperature"], [2.0, 2.5], rtol=1e-15)
    assert set(table["method"]) == {"enumeration"} and set(table["ensemble"]) == {"canonical"}

    # no exact answer: a canonical cell above the enumeration limit, given by option or by size
    for args in (["--enumerate-max-sites", "9"], ["--size", "8x8"]):
        result = runner.invoke(app, ["exact", "reference", "--system", str(system), *args,
                                     "--out", str(tmp_path / "x.csv")])
        assert result.exit_code != 0 and "has no exact reference" in str(result.exception), args
        assert not (tmp_path / "x.csv").exists()
