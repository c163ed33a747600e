"""Disorder averages of a spin-glass family: sample means and sample-to-sample errors against
hand-computed values; the family figure and its command, with the energy / link-overlap identity
panel of a Gaussian family (from real parallel-tempering runs) plotting that table's values."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lattherm.analysis.figures import TableError
from lattherm.analysis.spin_glass import (IDENTITY_SIDES, MEAN, disorder_average, link_overlap_identity,
                                          overlap_panel_temperatures, spin_glass_figure)
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
        disorder_average([*tables, pd.DataFrame({"system": ["g"], "method": ["x"], "size": ["4x4"],
                                                 "temperature": [1.0]})], "g")
    with pytest.raises(LatthermError, match="table 0 lacks column\\(s\\) \\['size'\\]"):
        disorder_average([tables[0].drop(columns="size"), *tables[1:]], "g")


def test_disorder_average_keeps_cells_apart(tables):
    """Rows of another cell are averaged among themselves, never with the training cell's; the
    figure then labels each curve with its cell."""
    bigger = _thermo("g_seed1", "enumeration", [-5.0, -6.0]).assign(size="8x8")
    thermo, overlaps = disorder_average([*tables, bigger], "g")
    mean = thermo[(thermo["sample"] == MEAN) & (thermo.method == "enumeration")].set_index(["size", "temperature"])
    assert mean.free_energy_per_site[("4x4", 1.0)] == pytest.approx(-1.2, abs=1e-15)
    assert mean.n_samples[("4x4", 1.0)] == 3
    assert mean.free_energy_per_site[("8x8", 1.0)] == -5.0 and mean.n_samples[("8x8", 1.0)] == 1
    fig = spin_glass_figure(thermo, overlaps)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {"enumeration, 4x4 cell", "enumeration, 8x8 cell", "made, 4x4 cell"} <= set(labels)
    assert fig.axes[0].get_title() == "g, 4x4 cell, 8x8 cell: F / N (3 disorder samples)"


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
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["g, 4x4 cell: F / N (3 disorder samples)", "g, 4x4 cell: E / N (3 disorder samples)",
                      "g, 4x4 cell: C / N (3 disorder samples)", "g, N = 2: P(q) at T = 1", "g, N = 2: P(q) at T = 2"]
    with pytest.raises(TableError, match="thermodynamics table lacks column\\(s\\) \\['heat_capacity_per_site'\\]"):
        spin_glass_figure(pd.read_csv(thermo).drop(columns="heat_capacity_per_site"), pd.read_csv(overlap))


@pytest.fixture(scope="module")
def identity(short_gaussian_tempering):
    """The identity table of eight short parallel-tempering runs, named as the ``tables`` family:
    its check passes at T = 3 and fails at T = 1, 0.5, 0.25."""
    return link_overlap_identity(short_gaussian_tempering, "g")


def _identity_axis(fig):
    panels = [ax for ax in fig.axes if ax.get_visible() and "identity" in ax.get_title()]
    assert len(panels) == 1, [ax.get_title() for ax in fig.axes]
    return panels[0]


def test_identity_panel_plots_the_identity_table(tables, identity):
    """Both sides of the identity at every temperature, with their sample-to-sample error bars,
    and rings exactly at the failed checks; in the bottom row's free slot (P(q) at two
    temperatures here), or a fourth column when P(q) fills the row; none without the table."""
    thermo, overlaps = disorder_average(tables, "g")
    plain = spin_glass_figure(thermo, overlaps)
    assert not [ax for ax in plain.axes if "identity" in ax.get_title()]
    assert sum(ax.get_visible() for ax in plain.axes) == 5

    fig = spin_glass_figure(thermo, overlaps, identity)
    assert len(fig.axes) == 6 and all(ax.get_visible() for ax in fig.axes)
    ax = _identity_axis(fig)
    assert ax is fig.axes[5] and ax.get_xscale() == "log"
    means = identity[identity["sample"] == MEAN].sort_values("temperature")
    assert means.check.tolist() == ["fail", "fail", "fail", "pass"]  # T = 0.25, 0.5, 1, 3
    assert ax.get_title() == "g, 16x16 cell: E / link-overlap identity\n(8 disorder samples, 1 of 4 T pass)"
    bars = {container.get_label(): container for container in ax.containers}
    assert set(bars) == set(IDENTITY_SIDES.values())
    for side, label in IDENTITY_SIDES.items():
        line, _, (segments,) = bars[label].lines
        np.testing.assert_array_equal(line.get_xdata(), means.temperature)
        np.testing.assert_array_equal(line.get_ydata(), means[side])
        half = np.array([(top - bottom) / 2 for (_, bottom), (_, top) in segments.get_segments()])
        np.testing.assert_allclose(half, means[f"{side}_err"], rtol=1e-12)
        assert (means[f"{side}_err"] > 0).all()
    rings = [line for line in ax.get_lines() if line.get_label().startswith("check failed")]
    assert len(rings) == 1
    failed = means[means.check == "fail"]
    np.testing.assert_array_equal(rings[0].get_xdata(), np.repeat(failed.temperature, 2))
    np.testing.assert_array_equal(rings[0].get_ydata(), failed[list(IDENTITY_SIDES)].to_numpy().ravel())

    # P(q) at three temperatures fills the bottom row: the identity gets a fourth column
    third = disorder_average([*tables, _overlap("g_seed1", "enumeration", [0.1, 0.8, 0.1], temperature=4.0)], "g")
    wide = spin_glass_figure(*third, identity)
    assert len(wide.axes) == 8 and not wide.axes[3].get_visible()
    assert _identity_axis(wide) is wide.axes[7]
    assert sum(ax.get_visible() for ax in wide.axes) == 7

    with pytest.raises(TableError, match="identity table is of family \\['other'\\]"):
        spin_glass_figure(thermo, overlaps, identity.assign(family="other"))
    with pytest.raises(TableError, match="identity table lacks column\\(s\\) \\['check'\\]"):
        spin_glass_figure(thermo, overlaps, identity.drop(columns="check"))


def test_identity_means_are_per_cell(short_gaussian_tempering):
    """Samples of two cells are averaged apart (four each); a summary without its cell is refused."""
    two = [summary.assign(size="8x8") if i % 2 else summary for i, summary in enumerate(short_gaussian_tempering)]
    means = link_overlap_identity(two, "g").query("sample == @MEAN")
    assert set(means["size"]) == {"16x16", "8x8"} and set(means.n_samples) == {4}
    with pytest.raises(LatthermError, match=r"table 0 lacks column\(s\) \['size'\]"):
        link_overlap_identity([short_gaussian_tempering[0].drop(columns="size")], "g")


def test_figure_command_takes_the_identity_table(tables, identity, tmp_path):
    """`figure-spin-glass IDENTITY` draws the panel from the table on disk; two tables are refused."""
    thermo, overlaps = disorder_average(tables, "g")
    paths = {name: tmp_path / f"{name}.csv" for name in ("thermo", "overlap", "identity")}
    for name, table in zip(paths, (thermo, overlaps, identity)):
        table.to_csv(paths[name], index=False)
    options = ["--thermodynamics", str(paths["thermo"]), "--overlap", str(paths["overlap"]),
               "--out", str(tmp_path / "fig.png")]
    result = CliRunner().invoke(app, ["analysis", "figure-spin-glass", str(paths["identity"]), *options])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig.png").stat().st_size > 0
    result = CliRunner().invoke(app, ["analysis", "figure-spin-glass", *[str(paths["identity"])] * 2, *options])
    assert result.exit_code != 0 and "a family has one" in str(result.exception)
