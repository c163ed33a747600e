"""Disorder averages of a spin-glass family: sample means and sample-to-sample errors against
hand-computed values; the family figure and its command."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lattherm.analysis.spin_glass import MEAN, disorder_average, overlap_panel_temperatures, spin_glass_figure
from lattherm.cli import app
from lattherm.errors import LatthermError


def _thermo(system, method, f, temperatures=(1.0, 2.0)):
    return pd.DataFrame({"system": system, "method": method, "size": "4x4", "temperature": list(temperatures),
                         "free_energy_per_site": f, "energy_per_site": [v / 2 for v in f],
                         "heat_capacity_per_site": [0.3, 0.2][: len(f)]})


def _overlap(system, method, probabilities, temperature=1.0):
    q = 1.0 - 2.0 * np.arange(3) / 2  # N = 2: q = 1, 0, -1
    return pd.DataFrame({"system": system, "method": method, "size": "2", "temperature": temperature, "q": q,
                         "probability": probabilities, "n_eff": 100.0})


@pytest.fixture
def tables():
    return [_thermo("g_seed1", "enumeration", [-1.0, -2.0]), _thermo("g_seed2", "enumeration", [-1.2, -2.4]),
            _thermo("g_seed3", "enumeration", [-1.4, -2.6]),
            _thermo("g_seed1", "made", [-0.9], [1.0]).assign(free_energy_per_site_err=0.01),
            _overlap("g_seed1", "enumeration", [0.25, 0.5, 0.25]), _overlap("g_seed2", "enumeration", [0.4, 0.2, 0.4]),
            _overlap("g_seed1", "parallel_tempering", [0.3, 0.4, 0.3], temperature=2.0).assign(probability_err=0.05)]


def test_disorder_average_means_and_sample_to_sample_errors(tables):
    thermo, overlaps = disorder_average(tables, "g")
    assert set(thermo.family) == {"g"}
    mean = thermo[(thermo["sample"] == MEAN) & (thermo.method == "enumeration")].set_index("temperature")
    f = np.array([-1.0, -1.2, -1.4])
    assert mean.free_energy_per_site[1.0] == pytest.approx(f.mean(), abs=1e-15)
    assert mean.free_energy_per_site_err[1.0] == pytest.approx(f.std(ddof=1) / np.sqrt(3), abs=1e-15)
    assert mean.n_samples[1.0] == 3
    made = thermo[(thermo["sample"] == MEAN) & (thermo.method == "made")]
    # a single sample keeps its own statistical error where it has one
    assert made.free_energy_per_site.tolist() == [-0.9] and made.free_energy_per_site_err.tolist() == [0.01]
    assert np.isnan(made.energy_per_site_err.iloc[0])
    assert len(thermo[thermo["sample"] != MEAN]) == 7  # every per-sample row is kept
    p = overlaps[(overlaps["sample"] == MEAN) & (overlaps.method == "enumeration")].sort_values("q")
    np.testing.assert_allclose(p.probability, [0.325, 0.35, 0.325])
    np.testing.assert_allclose(p.probability_err, np.abs([0.25 - 0.4, 0.5 - 0.2, 0.25 - 0.4]) / np.sqrt(2) / np.sqrt(2))
    pt = overlaps[(overlaps["sample"] == MEAN) & (overlaps.method == "parallel_tempering")]
    np.testing.assert_allclose(pt.probability_err, 0.05)
    # chi_SG = N <q^2> = 2 (P(1) + P(-1)) per sample
    chi = overlaps[overlaps["sample"] != MEAN].groupby(["sample", "method"]).chi_sg.first()
    assert chi[("g_seed1", "enumeration")] == pytest.approx(1.0) and chi[("g_seed2", "enumeration")] == pytest.approx(1.6)
    assert overlap_panel_temperatures(overlaps) == [1.0, 2.0]


def test_disorder_average_refuses_a_table_without_quantities(tables):
    with pytest.raises(LatthermError, match="neither a q column"):
        disorder_average([*tables, pd.DataFrame({"system": ["g"], "method": ["x"], "temperature": [1.0]})], "g")


def test_family_figure_and_commands(tables, tmp_path):
    paths = []
    for i, table in enumerate(tables):
        paths.append(tmp_path / f"t{i}.csv")
        table.to_csv(paths[-1], index=False)
    runner = CliRunner()
    thermo, overlap = tmp_path / "thermo.csv", tmp_path / "overlap.csv"
    result = runner.invoke(app, ["analysis", "disorder-average", *map(str, paths), "--family", "g",
                                 "--out-thermodynamics", str(thermo), "--out-overlap", str(overlap)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["analysis", "figure-spin-glass", "--thermodynamics", str(thermo),
                                 "--overlap", str(overlap), "--out", str(tmp_path / "fig.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig.png").stat().st_size > 0
    fig = spin_glass_figure(pd.read_csv(thermo), pd.read_csv(overlap))
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()][3:] == ["g: P(q) at T = 1", "g: P(q) at T = 2"]
