"""The phase-diagram scans on the batched torch MCMC (lattherm.mcmc.phase_scans): canonical
parallel tempering (MBAR F, E) and semi-grand x(dmu) against exact enumeration of the 16-site
CuAu cell and against mchammer; the semi-grand / canonical Legendre relation and its dmu
convention on the enumerated cell; hysteresis of dmu scans swept up and down where a
first-order jump is known, and none where there is none."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lattherm import K_B_EV
from lattherm.analysis.phase_diagram import composition_at_dmu, hysteresis_windows
from lattherm.ce.published import published_cluster_expansion, write_published_ce
from lattherm.cli import app
from lattherm.exact.enumeration import enumerate_energies, semi_grand_scan as exact_semi_grand, thermo_from_energies
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.hamiltonians.ising import Ising
from lattherm.io import read_table
from lattherm.lattices import make_lattice
from lattherm.mcmc.mbar import mbar_scan
from lattherm.mcmc.phase_scans import ScanSettingsError, canonical_scan, semi_grand_scan


@pytest.fixture(scope="module")
def cell16():
    """The 16-site cubic FCC cell (2 x 2 x 1 conventional cubes) and all 2^16 energies."""
    torch.set_num_threads(1)
    lattice = make_lattice("fcc_cubic", [2, 2, 1], a=3.8)
    ham = ClusterExpansionHamiltonian(published_cluster_expansion(), lattice)
    energies, ones = enumerate_energies(ham)
    return lattice, ham, energies, ones


def _sigmas(value, exact, error):
    return np.abs(np.asarray(value, float) - np.asarray(exact, float)) / np.asarray(error, float)


@pytest.mark.slow
def test_canonical_scan_gives_exact_free_energies_and_energies(cell16):
    """Parallel tempering from T = inf at x = 1/4 and 1/2; MBAR ln Z and the mean energy
    within 4 sigma of enumeration at every temperature, with error bars that are not zero."""
    lattice, ham, energies, ones = cell16
    temperatures = [3000.0, 1500.0, 1000.0, 800.0, 650.0]
    for n_ones, seed in ((4, 1), (8, 2)):
        scan = canonical_scan(ham, lattice, temperatures, n_ones, chains=64, sweeps=400, burn_in=100, seed=seed,
                              progress=False)
        table = scan.table
        assert table.temperature.tolist() == [math.inf, *temperatures] and (table.n_ones == n_ones).all()
        assert (table.direction == "cooling").all() and scan.final.shape == (len(table), 16)
        assert (scan.final.sum(axis=1) == n_ones).all()
        free = mbar_scan(table, scan.samples, "scan")
        exact = thermo_from_energies(energies, ones, 16, free.beta, canonical_n_ones=n_ones)
        dev_f = _sigmas(free.log_z, exact.log_z, free.log_z_err)
        dev_e = _sigmas(free.energy, exact.energy, free.energy_err)
        print(f"\nn_ones {n_ones}: ln Z {np.round(dev_f, 2)} sigma, E {np.round(dev_e, 2)} sigma, "
              f"F err/site {free.free_energy_per_site_err.max():.2e} eV")
        assert np.all(dev_f < 4) and np.all(dev_e < 4)
        assert np.all(free.log_z_err > 0) and np.all(free.free_energy_per_site_err < 2e-4)


@pytest.mark.slow
def test_semi_grand_scans_both_ways_match_enumeration(cell16):
    """Above the ordering temperatures both directions give the exact <x> and semi-grand <E>
    within 4 sigma at every dmu, and no hysteresis window."""
    lattice, ham, energies, ones = cell16
    temperatures, dmus = [1000.0, 2000.0], [-0.1, -0.03, 0.0, 0.03, 0.1]
    table = pd.concat([semi_grand_scan(ham, lattice, temperatures, dmus, direction, chains=32, sweeps=200,
                                       burn_in=40, seed=5, progress=False) for direction in ("up", "down")])
    exact = exact_semi_grand(energies, ones, 16, [1.0 / (K_B_EV * t) for t in temperatures], dmus)
    exact["temperature"] = 1.0 / (K_B_EV * exact.beta)
    for row in table.itertuples():
        ref = exact[np.isclose(exact.dmu, row.dmu) & np.isclose(exact.temperature, row.temperature)].iloc[0]
        assert _sigmas(row.composition, ref.concentration, row.composition_err) < 4, row
        assert _sigmas(row.energy, ref.energy, row.energy_err) < 4, row
    assert hysteresis_windows(table).empty


@pytest.mark.parametrize("temperature", [500.0, 900.0])
def test_legendre_relation_between_canonical_and_semi_grand(cell16, temperature):
    """The exact semi-grand <x>(dmu) of SemiGrand (E - dmu sum s) is the Legendre transform of the
    exact canonical F(x): P(n) ~ exp(-beta N (f(n / N) - dmu (2 n / N - 1))), so 2 dmu = df/dx per
    site. The phase-diagram analysis' prediction (the hull vertex minimising f - dmu (2x - 1)) and
    its bracket hold the exact composition; with dmu = df/dx (no factor 2) they would not."""
    lattice, ham, energies, ones = cell16
    beta = 1.0 / (K_B_EV * temperature)
    x = np.arange(17) / 16
    f = np.array([thermo_from_energies(energies, ones, 16, [beta], canonical_n_ones=n).free_energy_per_site[0]
                  for n in range(17)])
    dmus = np.linspace(-0.15, 0.15, 31)
    exact = exact_semi_grand(energies, ones, 16, [beta], dmus).concentration.to_numpy()
    log_w = -beta * 16 * (f[None, :] - dmus[:, None] * (2 * x[None, :] - 1))
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    np.testing.assert_allclose((w * x).sum(axis=1) / w.sum(axis=1), exact, rtol=0, atol=1e-12)
    # the bracket is a thermodynamic-limit statement; a 16-site cell's composition fluctuations
    # smear x(dmu) across it by up to 0.011 here (1200 K: none), under half a site
    slack = 0.5 / 16

    def outside(brackets):
        return np.maximum(brackets[:, 1] - exact, exact - brackets[:, 2])

    assert np.all(outside(np.array([composition_at_dmu(x, f, dmu) for dmu in dmus])) < slack)
    wrong = np.array([composition_at_dmu(x, f, 0.5 * dmu) for dmu in dmus])  # slope = dmu, not 2 dmu
    assert np.max(outside(wrong)) > 0.1


def test_semi_grand_scan_carries_chains_from_dmu_to_dmu():
    """Up starts from pure species 0 and down from pure species 1, dmu sorted each way, each
    chain carried on: a cold 4 x 4 Ising model (J = 1, T = 0.5) stays where a field h = -5 / +5
    holds it and turns over where the field wins (a flip gains 2 h - 8 J). The table names
    direction, dmu and cell; bad settings are refused early."""
    torch.set_num_threads(1)
    lattice = make_lattice("square", 4)
    ham = Ising(lattice)
    kwargs = dict(chains=4, sweeps=130, burn_in=2, progress=False, boltzmann_constant=1.0)
    up = semi_grand_scan(ham, lattice, [0.5], [5.0, -5.0], "up", **kwargs)
    down = semi_grand_scan(ham, lattice, [0.5], [5.0, -5.0], "down", **kwargs)
    assert up.dmu.tolist() == [-5.0, 5.0] and down.dmu.tolist() == [5.0, -5.0]
    np.testing.assert_allclose(up.composition, [0.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(down.composition, [1.0, 0.0], atol=1e-3)
    assert (up.direction == "up").all() and (up.n_sites == 16).all() and (up.ensemble == "semi_grand").all()
    with pytest.raises(ScanSettingsError, match="direction"):
        semi_grand_scan(ham, lattice, [0.5], [0.0, 0.1], "sideways", 4, 200, 10)
    with pytest.raises(ScanSettingsError, match="128 recorded"):
        semi_grand_scan(ham, lattice, [0.5], [0.0, 0.1], "up", 4, 100, 10)
    with pytest.raises(ScanSettingsError, match="finite and positive"):
        semi_grand_scan(ham, lattice, [math.inf], [0.0, 0.1], "up", 4, 200, 10)


def test_field_sweeps_show_hysteresis_below_the_ising_transition():
    """The 2D Ising model (J = 1, T_c = 2.27) on 4 x 4 in a field h swept up and down (h as
    dmu): at T = 1.5 the magnetised state survives the field's reversal until the field
    nucleates the other one, a hysteresis window around the jump at h = 0; at T = 5
    (paramagnet) the directions agree within errors and no window is reported."""
    torch.set_num_threads(1)
    lattice = make_lattice("square", 4)
    fields = [-3.0, -1.5, -0.25, 0.25, 1.5, 3.0]
    table = pd.concat([semi_grand_scan(Ising(lattice), lattice, [1.5, 5.0], fields, direction, chains=32,
                                       sweeps=140, burn_in=12, seed=3, progress=False, boltzmann_constant=1.0)
                       for direction in ("up", "down")])
    windows = hysteresis_windows(table)
    assert windows.temperature.tolist() == [1.5], windows
    window = windows.iloc[0]
    assert -3.0 < window.dmu_low <= -0.25 and 0.25 <= window.dmu_high < 3.0
    assert window.composition_up < 0.2 and window.composition_down > 0.8 and window.gap_sigmas > 10
    hot = table[table.temperature == 5.0].pivot(index="dmu", columns="direction", values="composition")
    assert np.all(np.abs(hot.up - hot.down) < 0.05)


def test_hysteresis_windows_are_contiguous_runs_of_disagreement():
    """Two separated runs of disagreeing dmus are two windows; a gap under one site is none."""
    dmus = [-0.2, -0.1, 0.0, 0.1, 0.2, 0.3]
    up = [0.0, 0.0, 0.5, 0.5, 0.5, 1.0]
    down = [0.0, 0.5, 0.5, 1.0, 1.0, 1.0 - 0.5 / 16]
    table = pd.DataFrame({"temperature": 400.0, "dmu": dmus * 2, "direction": ["up"] * 6 + ["down"] * 6,
                          "composition": up + down, "composition_err": 0.01, "n_sites": 16})
    windows = hysteresis_windows(table)
    assert windows[["dmu_low", "dmu_high"]].values.tolist() == [[-0.1, -0.1], [0.1, 0.2]]
    assert windows.composition_up.tolist() == [0.0, 0.5] and windows.composition_down.tolist() == [0.5, 1.0]


@pytest.mark.slow
def test_canonical_scan_agrees_with_mchammer_on_32_sites():
    """The canonical scan's energy and L1_0 order at x = 1/2 against an independent mchammer run
    on the 32-site cell (2 x 2 x 2 cubes), within their combined error bars (4 sigma)."""
    from lattherm.mcmc.mchammer_runs import run_scan

    torch.set_num_threads(1)
    ce = published_cluster_expansion()
    lattice = make_lattice("fcc_cubic", [2, 2, 2], a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    temperatures = [1500.0, 900.0]
    torch_table = canonical_scan(ham, lattice, temperatures, 16, chains=64, sweeps=300, burn_in=60, seed=4,
                                 progress=False).table.set_index("temperature")
    mch = run_scan(ce, lattice, temperatures, "canonical", concentration=0.5, steps_per_site=3000, seed=2)
    for row in mch.itertuples():
        mine = torch_table.loc[row.temperature]
        for column in ("energy_per_site", "order_l10"):
            err = math.hypot(getattr(row, f"{column}_err"), mine[f"{column}_err"])
            assert abs(getattr(row, column) - mine[column]) < 4 * err, (row.temperature, column)


@pytest.mark.slow
def test_cli_scans_and_phase_diagram_tables(tmp_path):
    """`mcmc canonical` (table, samples, structures), `mcmc integrate`, `mcmc semi-grand` up and
    down, `mcmc vcsgc` and `analysis phase-diagram` chain up on a tiny block: F with error bars,
    the semi-grand check against F(x, T) per direction, the hysteresis table and the VCSGC check."""
    write_published_ce(tmp_path / "cuau.json")
    block = {"alloy": "cuau", "size": [2, 2, 1], "temperatures": [3000.0, 1500.0], "concentrations": [0.25, 0.5, 0.75],
             "dmus": [-0.05, 0.0, 0.05], "chains": 8, "sweeps": 140, "burn_in": 10,
             "semi_grand_temperatures": [1500.0], "semi_grand_chains": 8, "semi_grand_sweeps": 140,
             "semi_grand_burn_in": 10, "vcsgc_temperatures": [1500.0], "vcsgc_kappa": 2.0, "vcsgc_phi_count": 5,
             "vcsgc_chains": 16, "vcsgc_sweeps": 140, "vcsgc_burn_in": 10}
    settings = tmp_path / "pd.yaml"
    settings.write_text(yaml.safe_dump(block))
    common = ["--settings", str(settings), "--alloys", str(tmp_path), "--seed", "0"]
    tables = []
    for x in block["concentrations"]:
        out = {k: tmp_path / f"{k}_{x}.{ext}" for k, ext in (("scan", "csv"), ("samples", "parquet"),
                                                              ("structures", "extxyz"), ("free", "csv"))}
        result = CliRunner().invoke(app, ["mcmc", "canonical", *common, "--concentration", str(x), "--out",
                                          str(out["scan"]), "--out-samples", str(out["samples"]),
                                          "--out-structures", str(out["structures"])])
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(app, ["mcmc", "integrate", "--table", str(out["scan"]), "--samples",
                                          str(out["samples"]), "--out", str(out["free"])])
        assert result.exit_code == 0, result.output
        tables.append(out["free"])
    free = read_table(tables[1])
    assert free.temperature.tolist() == [3000.0, 1500.0] and (free.concentration == 0.5).all()
    assert (free.free_energy_per_site_err > 0).all() and (free.free_energy_estimator == "mbar").all()
    for direction in ("up", "down"):
        out = tmp_path / f"semi_grand_{direction}.csv"
        result = CliRunner().invoke(app, ["mcmc", "semi-grand", *common, "--direction", direction, "--out", str(out)])
        assert result.exit_code == 0, result.output
        tables.append(out)
    result = CliRunner().invoke(app, ["mcmc", "vcsgc", *common, "--temperature", "1500", "--out",
                                      str(tmp_path / "vcsgc_T1500.csv"), "--out-histograms",
                                      str(tmp_path / "vcsgc_T1500_histograms.csv")])
    assert result.exit_code == 0, result.output
    tables.append(tmp_path / "vcsgc_T1500_histograms.csv")
    outs = {k: tmp_path / f"{k}.csv" for k in ("boundaries", "phases", "transitions", "semi-grand", "hysteresis",
                                                "vcsgc-check", "vcsgc-binodals")}
    result = CliRunner().invoke(app, ["analysis", "phase-diagram", *map(str, tables),
                                      *[a for k, path in outs.items() for a in (f"--out-{k}", str(path))]])
    assert result.exit_code == 0, result.output
    check = read_table(outs["semi-grand"])
    assert len(check) == 6 and set(check.direction) == {"up", "down"}
    assert {"concentration_predicted", "concentration_low", "concentration_high", "within_bracket"} <= set(check)
    assert list(read_table(outs["hysteresis"]).columns)[:3] == ["temperature", "dmu_low", "dmu_high"]
    vcsgc = read_table(outs["vcsgc-check"])
    assert (vcsgc.temperature == 1500.0).all() and set(vcsgc.concentration) <= {0.25, 0.5, 0.75} and len(vcsgc)
    assert {"difference_sigmas", "difference_mev", "consistent"} <= set(vcsgc)
    assert list(read_table(outs["vcsgc-binodals"]).columns)[:3] == ["temperature", "x_left_canonical",
                                                                     "x_right_canonical"]
    bad = CliRunner().invoke(app, ["mcmc", "semi-grand", *common, "--direction", "sideways", "--out",
                                   str(tmp_path / "x.csv")])
    assert bad.exit_code != 0 and "sideways" in str(bad.exception)
