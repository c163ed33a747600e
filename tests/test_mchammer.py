"""icet's mchammer against full CE recomputation and against the torch samplers on the same CE."""

import numpy as np
from ase.io import read as ase_read
import pytest
import yaml
from typer.testing import CliRunner

from lattherm import K_B_EV
from lattherm.ce.published import published_cluster_expansion, write_published_ce
from lattherm.cli import app
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.io import read_table
from lattherm.lattices import make_lattice
from lattherm.mcmc.mchammer_runs import check_incremental_energies, run_scan
from lattherm.mcmc.samplers import scan
from lattherm.observables import standard_observables
from lattherm.phases import matching_prototype


def cuau_test_ce():
    """The published DFT-fitted CuAu cluster expansion (icet), 11 parameters."""
    return published_cluster_expansion()


@pytest.mark.parametrize("kind, size", [("fcc", (2, 2, 4)), ("fcc", (4, 4, 4)), ("fcc", (4, 4, 8)),
                                        ("fcc_cubic", (2, 2, 2)), ("fcc_cubic", (3, 3, 3))])
def test_incremental_energies_match_full_recomputation(kind, size):
    # 16, 64 and 128 sites are the paper's (self-interacting) cells; the check compares
    # calculate_change with n * (predict(after) - predict(before)) for random flips and swaps
    lattice = make_lattice(kind, size, a=3.8)
    worst = check_incremental_energies(cuau_test_ce(), lattice.to_atoms(np.zeros(lattice.n_sites, int), ["Cu", "Au"]),
                                       n_trials=30, seed=1)
    assert worst < 1e-10


def combined_sigmas(a, b, col):
    return abs(a[col].iloc[0] - b[col].iloc[0]) / np.hypot(a[f"{col}_err"].iloc[0], b[f"{col}_err"].iloc[0])


def test_canonical_and_semi_grand_agree_with_torch_sampler():
    # the 32-site conventional cell (icet warns it self-interacts; the incremental-energy test
    # above shows mchammer's changes are exact on it) at a temperature where both samplers
    # decorrelate within about one sweep
    ce = cuau_test_ce()
    lattice = make_lattice("fcc_cubic", (2, 2, 2), a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    temperature = 1500.0
    beta = 1.0 / (K_B_EV * temperature)
    obs = standard_observables(lattice)
    deviations = {}

    mch = run_scan(ce, lattice, [temperature], "canonical", concentration=0.5, steps_per_site=2000, seed=2)
    torch_table = scan(ham, [beta], n_chains=32, n_sweeps=140, move="swap", n_ones=16, burn_in=5, seed=3,
                       observables=obs)
    for col in ("energy", "order_parameter", "c_sub0", "sro_1"):
        deviations[f"canonical {col}"] = combined_sigmas(mch, torch_table, col)
    assert mch.composition.iloc[0] == torch_table.composition.iloc[0] == 0.5

    dmu = 0.01
    mch_sg = run_scan(ce, lattice, [temperature], "semi_grand", dmu=dmu, steps_per_site=2000, seed=4)
    torch_sg = scan(SemiGrand(ham, dmu), [beta], n_chains=32, n_sweeps=140, move="flip", burn_in=5, seed=5,
                    observables=obs)
    for col in ("energy", "composition", "order_parameter"):
        deviations[f"semi-grand {col}"] = combined_sigmas(mch_sg, torch_sg, col)
    print("\n" + ", ".join(f"{k}: {v:.2f} sigma" for k, v in deviations.items()))
    print(f"mchammer trial steps/s: canonical {mch.trial_steps_per_second.iloc[0]:.0f}, "
          f"semi-grand {mch_sg.trial_steps_per_second.iloc[0]:.0f}")
    assert all(v < 3 for v in deviations.values())
    # the first-shell Warren-Cowley parameter of a near-random alloy is small, and finite
    assert abs(mch.sro_1.iloc[0]) < 0.2 and mch.sro_1_err.iloc[0] > 0
    # one column name per observable: the mchammer and torch tables hold the same ones
    for col in obs:
        assert {col, f"{col}_err"} <= set(mch.columns) & set(torch_table.columns) & set(mch_sg.columns), col


def test_bad_arguments_raise():
    ce = cuau_test_ce()
    lattice = make_lattice("fcc_cubic", (2, 2, 2), a=3.8)
    with pytest.raises(ValueError, match="ensemble"):
        run_scan(ce, lattice, [500.0], "grand")
    with pytest.raises(ValueError, match="concentration"):
        run_scan(ce, lattice, [500.0], "canonical", dmu=0.1)
    with pytest.raises(ValueError, match="multiple"):
        run_scan(ce, lattice, [500.0], "canonical", concentration=0.3)
    with pytest.raises(ValueError, match="temperatures"):
        run_scan(ce, lattice, [-5.0], "semi_grand", dmu=0.0)


def test_cli_mchammer_writes_a_tidy_table(tmp_path):
    """`mcmc mchammer` scans the alloy its phase-diagram block names, read from the alloys directory."""
    write_published_ce(tmp_path / "cuau.json")
    block = {"alloy": "cuau", "lattice": "fcc_cubic", "size": [2, 2, 2],
             "temperatures": [2000.0, 1500.0], "concentrations": [0.25, 0.5], "dmus": [0.0, 0.1]}
    settings = tmp_path / "phase_diagram.yaml"
    settings.write_text(yaml.safe_dump(block))
    out = tmp_path / "mchammer.csv"
    common = ["mcmc", "mchammer", "--settings", str(settings), "--alloys", str(tmp_path), "--seed", "0",
              "--steps-per-site", "128"]
    args = [*common, "--concentration", "0.25", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = read_table(out)
    # canonical scans start at T = inf, where thermodynamic integration starts
    assert table.temperature.tolist() == [np.inf, 2000.0, 1500.0] and (table.ensemble == "canonical").all()
    assert (table.composition == 0.25).all() and (table.n_ones == 8).all() and (table.n_sites == 32).all()
    assert (table.concentration == 0.25).all()
    # the four sublattice concentrations average to the fixed composition
    np.testing.assert_allclose(table[[f"c_sub{k}" for k in range(4)]].mean(axis=1), 0.25, atol=1e-12)

    # heating from the perfect L1_0 phase: up the temperatures, ordered at the start; recorded
    # energies for MBAR and the last configuration of each temperature as structures
    settings.write_text(yaml.safe_dump({**block, "temperatures": [300.0, 2000.0], "heating_concentrations": [0.5],
                                        "transition_temperatures": [700.0]}))
    heating = [*common, "--concentration", "0.5", "--direction", "heating", "--out", str(tmp_path / "heat.csv"),
               "--out-samples", str(tmp_path / "heat.parquet"), "--out-structures", str(tmp_path / "heat.extxyz")]
    result = CliRunner().invoke(app, heating)
    assert result.exit_code == 0, result.output
    table = read_table(tmp_path / "heat.csv")
    assert table.temperature.tolist() == [300.0, 2000.0] and (table.direction == "heating").all()
    assert table.order_l10.iloc[0] > 0.99 and table.order_l10.iloc[1] < 0.5
    samples = read_table(tmp_path / "heat.parquet")
    assert sorted(samples.beta.unique()) == sorted(table.beta) and (samples.chain == 0).all()
    frames = ase_read(tmp_path / "heat.extxyz", index=":")
    assert [f.info["temperature"] for f in frames] == [300.0, 2000.0] and frames[0].info["direction"] == "heating"
    assert matching_prototype(frames[0], ["Cu", "Au"]) == "L1_0 AB"
    settings.write_text(yaml.safe_dump(block))

    semi = tmp_path / "semi.csv"
    result = CliRunner().invoke(app, [*common, "--dmu", "0.0", "--out", str(semi)])
    assert result.exit_code == 0, result.output
    table = read_table(semi)
    assert table.temperature.tolist() == [2000.0, 1500.0] and (table.ensemble == "semi_grand").all()
    assert (table.dmu == 0.0).all() and "n_ones" not in table

    # the FCC cluster expansion refuses a cell of another lattice, naming both
    settings.write_text(yaml.safe_dump({**block, "lattice": "bcc_cubic"}))
    bad = CliRunner().invoke(app, args[:-2] + ["--out", str(tmp_path / "x.csv")])
    assert bad.exit_code != 0 and "fcc" in str(bad.exception) and "bcc" in str(bad.exception)
    settings.write_text(yaml.safe_dump({**block, "lattice": "square"}))
    bad = CliRunner().invoke(app, args[:-2] + ["--out", str(tmp_path / "x.csv")])
    assert bad.exit_code != 0 and "lattice: 'square' is not one of ['fcc', 'fcc_cubic'" in str(bad.exception)
    assert not (tmp_path / "x.csv").exists()
    # one scan point, named
    bad = CliRunner().invoke(app, args[:-2] + ["--dmu", "0.1", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code != 0 and "exactly one of --concentration" in str(bad.exception)
