"""T_c by free-energy crossing (lattherm.mcmc.coexistence): each branch's restricted free energy
against exact enumeration, the crossing against an analytic pair of branches, and the CLI."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lattherm import K_B_EV
from lattherm.analysis.phase_diagram import phase_diagram_tables
from lattherm.ce.published import published_cluster_expansion, write_published_ce
from lattherm.cli import app
from lattherm.errors import LatthermError
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice
from lattherm.mcmc.coexistence import VARIANTS, BranchSettings, crossing, phase_sum, run_branch, transition
from lattherm.mcmc.mbar import mbar_scan
from lattherm.mcmc.phase_scans import canonical_scan
from lattherm.observables import standard_observables
from lattherm.phases import ORDER_THRESHOLD


@pytest.fixture(scope="module")
def cell16():
    """The 16-site cubic FCC cell (2 x 2 x 1 conventional cubes) at x = 1/2, every one of its
    C(16, 8) = 12870 configurations with energy and order parameter."""
    lattice = make_lattice("fcc_cubic", [2, 2, 1], a=3.8)
    ham = ClusterExpansionHamiltonian(published_cluster_expansion(), lattice)
    x = torch.zeros(math.comb(16, 8), 16, dtype=torch.long)
    for row, ones in enumerate(itertools.combinations(range(16), 8)):
        x[row, list(ones)] = 1
    energy = ham.energy(x).numpy()
    eta = standard_observables(lattice)["order_parameter"](x).double().numpy()
    return lattice, ham, energy, eta


def _exact_log_z(energy, beta, mask):
    e = energy[mask]
    shift = -beta * e.min()
    return float(np.log(np.exp(-beta * e - shift).sum()) + shift)


@pytest.mark.parametrize("phase,temperatures", [("L1_0 AB", [150.0, 600.0, 900.0, 1200.0]),
                                                ("A1", [3000.0, 2000.0, 1500.0])])
def test_each_branch_gives_the_exact_restricted_free_energy(cell16, phase, temperatures):
    """The ordered region (order parameter >= 0.5) and the disordered one partition the
    configurations; each branch's ln Z (within 4 sigma: the anchor's error shifts a whole branch
    at once, and the rare long-lived excitations of this tiny cell make sigma itself noisy), anchored at its end (ln g - beta E0 - ln p0, or
    ln C(N, n) + ln f0 at T = inf), matches the enumerated sum over its region. (This cell is
    self-interacting: its cheapest excitation costs 0.23 eV, so the ordered anchor must be cold.)"""
    lattice, ham, energy, eta = cell16
    ordered = eta >= ORDER_THRESHOLD
    ground = np.isclose(energy, energy.min(), rtol=0, atol=1e-9)
    assert ground.sum() == VARIANTS["L1_0 AB"] and ordered[ground].all()  # the anchor's g
    table = run_branch(ham, lattice, 8, phase, temperatures, BranchSettings(chains=64, sweeps=400, burn_in=50),
                       seed=3, progress=False)
    assert table.in_branch.all()
    mask = ordered if phase != "A1" else ~ordered
    for row in table.itertuples():
        beta = row.beta
        exact = _exact_log_z(energy, beta, mask)
        assert abs(row.log_z - exact) < 4 * row.log_z_err + 1e-9, (row.temperature, row.log_z, exact, row.log_z_err)
        weights = np.exp(-beta * (energy[mask] - energy[mask].min()))
        mean_energy = float((energy[mask] * weights).sum() / weights.sum())
        assert abs(row.energy - mean_energy) < 4 * row.energy_err + 1e-6, (row.temperature, row.energy, mean_energy)
    assert (table.log_z_err[1:] > 0).all()


def test_phase_sum_gives_the_exact_free_energy_where_the_ordered_branch_reaches(cell16):
    """A canonical scan's F with ln Z = ln(Z_L1_0 + Z_A1) wherever the ordered branch is in
    branch: the full enumerated ln Z within 4 sigma at each such temperature (150 K, where only
    the anchored ordered branch runs, up into the window where both run), the scan kept
    elsewhere and beside it; branches of another cell are refused."""
    lattice, ham, energy, _ = cell16
    temperatures = [3000.0, 2000.0, 1500.0, 150.0]
    window = [600.0, 900.0, 1200.0]
    settings = BranchSettings(chains=64, sweeps=400, burn_in=50)
    ordered, disordered, _ = transition(ham, lattice, 8, "L1_0 AB", temperatures, window, settings, seed=5,
                                        progress=False)
    scan = canonical_scan(ham, lattice, temperatures + window, 8, chains=32, sweeps=300, burn_in=50, seed=5,
                          progress=False)
    free = mbar_scan(scan.table, scan.samples, "scan")
    result = phase_sum(free, pd.concat([ordered, disordered], ignore_index=True))
    summed = result[result.free_energy_estimator == "mbar phase sum"]
    assert 150.0 in summed.temperature.tolist() and len(summed) >= 3
    for row in summed.itertuples():
        exact = _exact_log_z(energy, row.beta, np.ones(len(energy), bool))
        assert abs(row.log_z - exact) < 4 * row.log_z_err + 1e-9, (row.temperature, row.log_z, exact, row.log_z_err)
        assert math.isfinite(row.scan_minus_phases_sigma)
    rest = result[result.free_energy_estimator == "mbar"]
    assert (rest.free_energy_per_site == rest.free_energy_per_site_scan).all() and len(rest) >= 3
    with pytest.raises(LatthermError, match="branches are on"):
        phase_sum(free, ordered.assign(n_sites=32))


def _branch(phase, betas, energy, offset, n_sites=100):
    """A branch of constant energy: beta F = beta E + offset exactly."""
    betas = np.asarray(betas)
    return pd.DataFrame({"phase": phase, "beta": betas, "temperature": 1.0 / (K_B_EV * betas), "n_sites": n_sites,
                         "in_branch": True, "energy": energy, "energy_var": 0.0,
                         "log_z": -(betas * energy + offset), "log_z_err": 0.01})


@pytest.mark.parametrize("disordered_betas", [[14.0, 15.0, 16.0, 17.0], [13.0, 14.0, 15.5]],
                         ids=["overlap", "gap"])
def test_crossing_of_two_branches_is_where_their_free_energies_meet(disordered_betas):
    """Ordered E = -3 eV, disordered E = 0, beta F offsets 0 and -48: they cross at beta = 16/eV,
    inside both ranges or, across a gap, by exact (linear) extrapolation; the error is
    k_B T^2 sigma(Delta beta F) / |Delta E|."""
    ordered = _branch("L1_0 AB", [15.0, 16.5, 18.0, 20.0], -3.0, 0.0)
    disordered = _branch("A1", disordered_betas, 0.0, -48.0)
    found = crossing(ordered, disordered)
    t_c = 1.0 / (K_B_EV * 16.0)
    assert found["t_c"] == pytest.approx(t_c, rel=1e-9)
    assert found["extrapolated"] == (max(disordered_betas) < 16.0)
    assert found["latent_heat_per_site"] == pytest.approx(0.03)
    assert found["t_c_err"] == pytest.approx(K_B_EV * t_c**2 * math.hypot(0.01, 0.01) / 3.0, rel=1e-6)
    assert found["t_c_extrapolation"] == pytest.approx(0.0, abs=1e-6)
    # branches that never meet give no T_c, and say why
    none = crossing(ordered, _branch("A1", disordered_betas, 0.0, -80.0))
    assert math.isnan(none["t_c"]) and none["reason"]


def test_cli_transition_writes_the_crossing_the_heating_scan_and_the_branches(tmp_path):
    """`lattherm mcmc transition` on the 32-site cell: a T_c row, the ordered branch as a heating
    scan (labelled by the phase-diagram tables), both branches; and the crossing lands in the
    transitions table."""
    alloys = tmp_path / "ce"
    alloys.mkdir()
    write_published_ce(alloys / "cuau.json")
    settings = tmp_path / "pd.yaml"
    settings.write_text(yaml.safe_dump({
        "alloy": "cuau", "lattice": "fcc_cubic", "size": [2, 2, 2], "temperatures": [20000.0, 1500.0, 300.0],
        "concentrations": [0.25, 0.5], "dmus": [0.0, 0.1], "heating_concentrations": [0.5],
        "transition_temperatures": [600.0, 800.0, 1000.0], "branch_chains": 8, "branch_sweeps": 200,
        "branch_burn_in": 50}))
    out = {k: tmp_path / f"{k}.csv" for k in ("crossing", "heating", "branches")}
    result = CliRunner().invoke(app, ["mcmc", "transition", "--settings", str(settings), "--alloys", str(alloys),
                                      "--concentration", "0.5", "--out", str(out["crossing"]),
                                      "--out-heating", str(out["heating"]), "--out-branches", str(out["branches"])])
    assert result.exit_code == 0, result.output
    crossing_row = pd.read_csv(out["crossing"])
    assert list(crossing_row.concentration) == [0.5] and crossing_row.phase.iloc[0] == "L1_0 AB"
    heating = pd.read_csv(out["heating"])
    assert (heating.direction == "heating").all() and heating.temperature.tolist() == [300.0, 600.0, 800.0, 1000.0]
    assert heating.order_l10.iloc[0] == 1.0
    branches = pd.read_csv(out["branches"])
    assert set(branches.phase) == {"L1_0 AB", "A1"}
    cooling = [pd.DataFrame({"temperature": [300.0, 1000.0], "concentration": x, "direction": "cooling",
                             "order_l12": 0.0, "order_l10": [1.0, 0.0], "heat_capacity_per_site": [0.0, 0.0],
                             "free_energy_per_site": [-0.04, -0.05], "free_energy_per_site_err": 1e-5})
               for x in (0.25, 0.5)]
    transitions = phase_diagram_tables([*cooling, heating, crossing_row])["transitions"]
    assert transitions.t_c.iloc[0] == crossing_row.t_c.iloc[0] or (
        math.isnan(transitions.t_c.iloc[0]) and math.isnan(crossing_row.t_c.iloc[0]))
