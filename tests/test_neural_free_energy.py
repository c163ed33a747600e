"""Neural F(x, T): one transformer conditioned on temperature and composition, its importance-
sampled free energy at every grid point against exact enumeration (on its training cell, and
transferred with fine-tuning to a larger cell), and the comparison table, figure and commands."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lattherm.analysis.neural_free_energy import (ENERGY_OFF, ESS_TOO_LOW, HEAVY_TAILED, TABLE_COLUMNS,
                                                  NeuralPhaseDiagramConfig, neural_free_energy_figure,
                                                  neural_free_energy_table)
from lattherm.analysis.figures import TableError
from lattherm.ce.published import write_published_ce
from lattherm.cli import app, main
from lattherm.exact import reference_table
from lattherm.models import build_model
from lattherm.schema import ConfigError
from lattherm.systems import SystemConfig, build_system
from lattherm.training import TrainConfig, train
from lattherm.transfer import transfer_grid

# physics_logits: the CE's local Boltzmann factor in the logits (plain, the same training gives ESS 0.05 at x = 0.25)
# lattice_symmetric off as in config.yaml's mam_physics (auto trains through the point-group mixture: 17x the cost)
MODEL = {"kind": "transformer", "d_model": 32, "n_layer": 1, "n_head": 2, "attention_shells": 2, "n_cond": 2,
         "physics_logits": True, "lattice_symmetric": False}
BLOCK = {"alloy": "cuau", "model": "mam", "train_size": [2, 2, 2], "transfer_size": [2, 2, 4],
         "concentrations": [0.25, 0.5, 0.75], "temperatures": [800.0, 1200.0],
         "mcmc": {"temperatures": [4000.0, 1200.0, 800.0], "chains": 8, "sweeps": 160, "burn_in": 32}}


def _trained(work, steps, **training):
    """The conditioned transformer on the 8-site cell (2x2x2 primitive FCC), x in {2, 4, 6} / 8."""
    torch.set_num_threads(1)
    ce_file = write_published_ce(work / "cuau.json")
    config = NeuralPhaseDiagramConfig.from_dict(BLOCK)
    systems = {x: build_system(SystemConfig.from_dict(config.system_block(x)), None, ce_file)
               for x in config.concentrations}
    first = systems[0.25]
    torch.manual_seed(0)
    model = build_model(MODEL, first.cell)
    settings = config.training_block({"steps": steps, "batch_size": 128, "lr": 3e-3, "anneal": 0.95, "clip": 1.0,
                                      **training}, 0)
    result = train(model, first, TrainConfig.from_dict(settings), work / "run", progress=False)
    return config, ce_file, systems, work / "run" / "checkpoint.pt", result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """150 steps (about 20 CPU-seconds)."""
    return _trained(tmp_path_factory.mktemp("neural_pd"), 150)


def _exact_per_site(system, temperature):
    table = reference_table(system, 20)
    return table.loc[np.isclose(table.temperature, temperature), "free_energy_per_site"].iloc[0]


@pytest.mark.slow
def test_conditioned_model_matches_enumeration_at_every_grid_point(trained):
    config, _, systems, checkpoint, result = trained
    assert set(result.log.concentration) == {0.25, 0.375, 0.5, 0.625, 0.75}  # every count in the range is drawn
    rows = transfer_grid(checkpoint, systems, config.temperatures, n_samples=4000, progress=False)
    assert [(r["concentration"], r["temperature"]) for r in rows] == \
        [(x, t) for x in config.concentrations for t in config.temperatures]
    for row in rows:
        exact = _exact_per_site(systems[row["concentration"]], row["temperature"])
        assert row["n_ones"] == round(8 * row["concentration"]) and row["n_sites"] == 8
        # measured: ESS 0.13 .. 0.31, |F_IS - F| / sigma <= 1.1
        assert row["ess"] > 0.1, row
        assert abs(row["free_energy_per_site"] - exact) < 3 * row["free_energy_per_site_err"], row


@pytest.mark.slow
def test_transferred_and_fine_tuned_model_matches_enumeration_on_the_larger_cell(trained):
    """2x2x2 -> 2x2x4 (16 sites, still enumerable): one fine-tuning over the trained ranges serves
    every composition, and the IS estimate is exact within its error bar at every point."""
    config, ce_file, _, checkpoint, _ = trained
    large = {x: build_system(SystemConfig.from_dict(config.system_block(x)), config.transfer_size, ce_file)
             for x in (0.25, 0.5)}
    rows = transfer_grid(checkpoint, large, [800.0, 1200.0], finetune_steps=3, n_samples=4000, progress=False)
    for row in rows:
        exact = _exact_per_site(large[row["concentration"]], row["temperature"])
        assert row["n_sites"] == 16 and row["source_sites"] == 8 and row["finetune_steps"] == 3
        assert math.isfinite(row["finetune_last_F_q"])
        assert row["ess"] > 0.01, row
        assert abs(row["free_energy_per_site"] - exact) < 3 * row["free_energy_per_site_err"], row


def test_trained_and_fine_tuned_by_example_at_every_grid_composition(tmp_path):
    """By example too (a tempering run at each grid composition, one sweep a step): the training
    settings name the grid's compositions, the fine-tuning on the larger cell keeps them (x = 1/4,
    1/2, 3/4 of 16 sites), and the IS estimate there is exact within its error bar."""
    config, ce_file, _, checkpoint, result = _trained(tmp_path, 60, example_sweeps=1)
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["config"]["example_concentrations"] == [0.25, 0.5, 0.75]
    assert len(saved["examples"]) == 3 and all(state.shape[1] == 8 for state in saved["examples"])
    large = {x: build_system(SystemConfig.from_dict(config.system_block(x)), config.transfer_size, ce_file)
             for x in (0.25, 0.75)}
    rows = transfer_grid(checkpoint, large, [1200.0], finetune_steps=3, finetune_lr=3e-4, n_samples=4000,
                         progress=False)
    for row in rows:
        exact = _exact_per_site(large[row["concentration"]], row["temperature"])
        assert row["n_sites"] == 16 and row["finetune_steps"] == 3
        assert row["ess"] > 0.01, row
        assert abs(row["free_energy_per_site"] - exact) < 3 * row["free_energy_per_site_err"], row


def test_cli_grid_table_and_figure(tmp_path, capsys):
    """The commands on a barely trained model (2 steps): every composition's point, the exact
    references joined, and F_IS within its error bar of them even so (8 sites, x = 1/4, 3/4 at
    1200 K: 28 configurations each)."""
    config, ce_file, systems, checkpoint, _ = _trained(tmp_path, 2)
    (tmp_path / "x.json").write_text(yaml.safe_dump(config.system_block(0.25)))
    alloys = ce_file.parent
    runner = CliRunner()
    grid = tmp_path / "grid.csv"
    out = runner.invoke(app, ["neural", "grid", "--checkpoint", str(checkpoint), "--system", str(tmp_path / "x.json"),
                              "--alloys", str(alloys), "--concentrations", "0.25,0.75", "--temperatures", "1200",
                              "--samples", "2000", "--out", str(grid)])
    assert out.exit_code == 0, out.output
    table = pd.read_csv(grid)
    assert list(table.concentration) == [0.25, 0.75] and set(table["size"]) == {"2x2x2"}
    exact = tmp_path / "exact.csv"
    pd.concat([reference_table(systems[x], 20) for x in (0.25, 0.75)]).to_csv(exact, index=False)
    joined = tmp_path / "table.csv"
    out = runner.invoke(app, ["analysis", "neural-free-energy", "--neural", str(grid), "--reference", str(exact),
                              "--out", str(joined)])
    assert out.exit_code == 0, out.output
    result = pd.read_csv(joined, keep_default_na=False)
    assert list(result.columns) == TABLE_COLUMNS and set(result.method_ref) == {"enumeration"}
    for row in result.itertuples():
        assert row.F_ref == pytest.approx(_exact_per_site(systems[row.x], row.T), abs=1e-12)
        assert abs(row.sigma) < 4 and row.reliable, row
    png = tmp_path / "fig.png"
    out = runner.invoke(app, ["analysis", "figure-neural-free-energy", "--table", str(joined), "--alloy", "cuau",
                              "--out", str(png)])
    assert out.exit_code == 0 and png.stat().st_size > 0, out.output

    # bad input: one line naming the option and the value
    for args, text in [(["--concentrations", "0.25,1.5"], "--concentrations value '1.5'"),
                       (["--concentrations", "0.3"], "--concentrations value 0.3 gives 2.4 species-1 sites of 8")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["neural", "grid", "--checkpoint", str(checkpoint), "--system", str(tmp_path / "x.json"),
                  "--alloys", str(alloys), *args, "--out", str(tmp_path / "bad.csv")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.startswith("error: ") and text in err and err.count("\n") == 1, err
        assert not (tmp_path / "bad.csv").exists()


def _grid(cell, sites, rows):
    return pd.DataFrame([{"size": cell, "n_sites": sites, "concentration": x, "temperature": t,
                          "free_energy_per_site": f, "free_energy_per_site_err": e, "ess": ess, "pareto_k": k,
                          "energy_is_per_site": u, "energy_is_per_site_err": u_err}
                         for x, t, f, e, ess, k, u, u_err in rows])


def test_table_joins_points_computes_sigma_and_flags_low_ess_heavy_tails_and_a_missed_phase():
    neural = [_grid("2x2x4", 16, [(0.5, 800.0, -0.0450, 0.0003, 0.4, 0.3, -0.0100, 0.0004),
                                  (0.5, 1200.0, -0.0600, 0.0002, 0.005, 0.5, -0.0050, 0.0004)]),
              _grid("4x4x8", 128, [(0.5, 700.0, -0.0373, 0.0001, 0.026, 0.68, -0.0010, 0.0005),
                                   (0.5, 800.0, -0.0430, 0.0003, 0.02, 0.6, -0.0020, 0.0005),
                                   (0.5, 1200.0, -0.0600, 0.0001, 0.05, 0.9, -0.0010, 0.0002)])]
    exact = pd.DataFrame({"method": "enumeration", "size": "2x2x4", "temperature": [800.0, 1200.0, 4000.0],
                          "free_energy_per_site": [-0.0454, -0.0595, -0.2], "concentration": 0.5,
                          "energy_per_site": [-0.0110, -0.0050, 0.0]})
    # at 700 K the reference's chains are 40 % ordered (E -0.0159), the model's samples all disordered
    mcmc = pd.DataFrame({"method": "mcmc", "size": "4x4x8", "temperature": [700.0, 800.0000000001, 1200.0],
                         "n_ones": 64, "n_sites": 128, "free_energy_per_site": [-0.0381, -0.0426, -0.0605],
                         "free_energy_per_site_err": [0.0001, 0.0004, 0.0001],
                         "energy_per_site": [-0.0159, -0.0035, -0.0012], "energy_per_site_err": [0.0025, 0.0003, 0.0001]})
    table = neural_free_energy_table(neural, [exact, mcmc], 0.01)
    assert list(table.columns) == TABLE_COLUMNS and len(table) == 5
    first, low, missed, large, heavy = (table.iloc[i] for i in range(5))
    assert first.sigma == pytest.approx(0.0004 / 0.0003) and first.diff_meV_per_site == pytest.approx(0.4)
    assert first.E_sigma == pytest.approx(0.0010 / 0.0004) and first.E_err_ref == 0.0  # enumeration: exact
    assert first.reliable and first.note == ""
    assert not low.reliable and low.note == ESS_TOO_LOW and low.diff_meV_per_site == pytest.approx(-0.5)
    assert not missed.reliable and missed.note == ENERGY_OFF  # ESS and k-hat pass: only the energy sees it
    assert missed.E_sigma == pytest.approx(0.0149 / math.hypot(0.0005, 0.0025))
    assert large.method_ref == "mcmc" and large.sites == 128 and large.x == 0.5
    assert large.sigma == pytest.approx(-0.0004 / 0.0005) and large.err_ref == 0.0004 and large.reliable
    assert large.E_sigma == pytest.approx(0.0015 / math.hypot(0.0005, 0.0003)) and large.E_ref == -0.0035
    assert not heavy.reliable and heavy.note == HEAVY_TAILED  # an ESS of 0.05 is no help with k = 0.9
    both = neural_free_energy_table([neural[0].assign(pareto_k=0.8, energy_is_per_site=-0.02)], [exact], 0.01).iloc[1]
    assert both.note == f"{ESS_TOO_LOW}; {HEAVY_TAILED}; {ENERGY_OFF}"
    fig = neural_free_energy_figure(table, "cuau")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["ESS", "E", "k"]  # unreliable points are labelled with their reasons, not plotted
    assert [t.get_text() for t in fig.texts] == [f"no number (x): ESS = {ESS_TOO_LOW}; k = {HEAVY_TAILED}; "
                                                 f"E = {ENERGY_OFF}"]
    assert [ax.get_title() for ax in fig.axes] == ["cuau 2x2x4 (16 sites) vs enumeration",
                                                   "cuau 4x4x8 (128 sites) vs mcmc"]
    with pytest.raises(TableError, match="no reference free energy for cell 4x4x8 at x = 0.5, T = 700"):
        neural_free_energy_table(neural, [exact], 0.01)
    with pytest.raises(TableError, match="lacks column"):
        neural_free_energy_table([neural[0].drop(columns="ess")], [exact], 0.01)


@pytest.mark.parametrize("change,text", [
    ({"concentrations": [0.25, 0.3]}, "neural_phase_diagram.concentrations[1] = 0.3 gives 2.4 species-1 sites"),
    ({"concentrations": [0.5, 0.25]}, "neural_phase_diagram.concentrations = [0.5, 0.25] must be increasing"),
    ({"temperatures": [800.0, 1000.0]}, "neural_phase_diagram.temperatures[1] = 1000.0 is not on"),
    ({"transfer_size": [3, 2, 4]}, "neural_phase_diagram.transfer_size = [3, 2, 4] does not repeat"),
    ({"concentrations": [0.5]}, "neural_phase_diagram.concentrations"),
    ({"ess_threshold": 2}, "neural_phase_diagram.ess_threshold"),
])
def test_bad_blocks_are_refused_naming_the_field(change, text):
    with pytest.raises(ConfigError) as info:
        NeuralPhaseDiagramConfig.from_dict({**BLOCK, **change})
    assert text in str(info.value) and "\n" not in str(info.value)
