"""Phase-diagram construction checked against the regular-solution model, whose binodal,
critical temperature and semi-grand composition are known in closed form.

Regular solution (k_B = 1, energies in units of Omega):
    f(x) = Omega x (1 - x) + T [x ln x + (1 - x) ln(1 - x)],   T_c = Omega / 2.
By the x <-> 1 - x symmetry the common tangent is horizontal, so the binodal x_b solves f'(x_b) = 0:
    T(x_b) = Omega (1 - 2 x_b) / ln((1 - x_b) / x_b).
"""

import numpy as np
import pandas as pd
import pytest
from scipy.special import xlogy

from lattherm.analysis.phase_diagram import (
    PhaseDiagramError,
    composition_at_dmu,
    lower_hull,
    order_disorder_temperatures,
    peak_position,
    phase_boundaries,
    semi_grand_compositions,
    two_phase_regions,
)

OMEGA = 1.0
GRID = np.linspace(0.0, 1.0, 4001)
DX = GRID[1] - GRID[0]


def regular_solution(x, temperature, omega=OMEGA):
    x = np.asarray(x, dtype=float)
    return omega * x * (1 - x) + temperature * (xlogy(x, x) + xlogy(1 - x, 1 - x))


def binodal_temperature(x_b, omega=OMEGA):
    return omega * (1 - 2 * x_b) / np.log((1 - x_b) / x_b)


def regular_solution_slope(x, temperature, omega=OMEGA):
    return omega * (1 - 2 * x) + temperature * np.log(x / (1 - x))


@pytest.mark.parametrize("x_b", [0.05, 0.15, 0.3, 0.45])
def test_binodal_of_regular_solution(x_b):
    temperature = binodal_temperature(x_b)
    regions = two_phase_regions(GRID, regular_solution(GRID, temperature))
    assert len(regions) == 1
    left, right = regions[0]
    assert left == pytest.approx(x_b, abs=DX)
    assert right == pytest.approx(1 - x_b, abs=DX)


def test_binodal_is_invariant_under_linear_terms():
    # Adding a + b x (a reference-state change) tilts f but leaves the common tangent points.
    x_b = 0.2
    temperature = binodal_temperature(x_b)
    tilted = regular_solution(GRID, temperature) + 0.7 - 2.3 * GRID
    [(left, right)] = two_phase_regions(GRID, tilted)
    assert left == pytest.approx(x_b, abs=DX)
    assert right == pytest.approx(1 - x_b, abs=DX)


def test_no_two_phase_region_above_critical_temperature():
    t_c = OMEGA / 2
    assert two_phase_regions(GRID, regular_solution(GRID, 1.01 * t_c)) == []
    # Just below T_c the gap is narrow but present and centred at x = 1/2.
    [(left, right)] = two_phase_regions(GRID, regular_solution(GRID, 0.98 * t_c))
    assert left < 0.5 < right
    assert left + right == pytest.approx(1.0, abs=2 * DX)


def test_linear_free_energy_has_no_region_despite_collinear_points():
    assert two_phase_regions(GRID, 3.0 * GRID - 1.0) == []
    assert list(lower_hull([0.0, 0.5, 1.0], [0.0, 0.5, 1.0])) == [0, 2]


def test_lower_hull_of_known_points():
    x = [0.0, 0.25, 0.5, 0.75, 1.0]
    f = [0.0, -1.0, -0.4, -0.9, 0.0]
    assert list(lower_hull(x, f)) == [0, 1, 3, 4]
    assert two_phase_regions(x, f) == [(0.25, 0.75)]


def test_phase_boundaries_table():
    temperatures = [binodal_temperature(0.1), binodal_temperature(0.3), 0.6]
    table = pd.DataFrame(
        [
            {"temperature": t, "concentration": x, "free_energy_per_site": f}
            for t in temperatures
            for x, f in zip(GRID, regular_solution(GRID, t))
        ]
    ).sample(frac=1.0, random_state=0)  # order of rows must not matter
    boundaries = phase_boundaries(table)
    assert list(boundaries.columns) == ["temperature", "x_left", "x_right"]
    assert len(boundaries) == 2  # T = 0.6 > T_c has none
    np.testing.assert_allclose(boundaries["x_left"], [0.1, 0.3], atol=DX)
    np.testing.assert_allclose(boundaries["x_right"], [0.9, 0.7], atol=DX)


@pytest.mark.parametrize("x0", [0.2, 0.35, 0.7])
def test_semi_grand_composition_above_critical_temperature(x0):
    # Minimising f(x) - dmu (2x - 1) gives f'(x) = 2 dmu: invert at a known x0.
    temperature = 1.0
    dmu = 0.5 * regular_solution_slope(x0, temperature)
    x, low, high = composition_at_dmu(GRID, regular_solution(GRID, temperature), dmu)
    assert x == pytest.approx(x0, abs=DX) and low < x0 < high
    # on a coarse grid the vertex is a grid point, and the bracket (its hull neighbours) holds x0
    coarse = np.linspace(0.1, 0.9, 9)
    x, low, high = composition_at_dmu(coarse, regular_solution(coarse, temperature), dmu)
    assert low <= x0 <= high and high - low <= 0.2 + 1e-12 and abs(x - x0) <= 0.1
    # past the grid's ends the bracket reaches the pure phases
    assert composition_at_dmu(coarse, regular_solution(coarse, temperature), 5.0)[1:] == (0.8, 1.0)


def test_semi_grand_composition_jumps_across_the_gap():
    x_b = 0.15
    temperature = binodal_temperature(x_b)
    f = regular_solution(GRID, temperature)
    assert composition_at_dmu(GRID, f, +1e-4)[0] == pytest.approx(1 - x_b, abs=2 * DX)
    assert composition_at_dmu(GRID, f, -1e-4)[0] == pytest.approx(x_b, abs=2 * DX)
    table = pd.DataFrame({"temperature": temperature, "concentration": GRID, "free_energy_per_site": f})
    predicted = semi_grand_compositions(table, [-1e-4, 1e-4])
    np.testing.assert_allclose(predicted["concentration"], [x_b, 1 - x_b], atol=2 * DX)


def test_peak_position_is_exact_for_a_quadratic_on_an_uneven_grid():
    t = np.array([200.0, 260.0, 300.0, 330.0, 400.0, 520.0])
    t0 = 312.7
    assert peak_position(t, 5.0 - 0.01 * (t - t0) ** 2) == pytest.approx(t0, rel=1e-12)
    assert np.isnan(peak_position(t, t))  # monotone: the peak is outside the scanned range


def test_order_disorder_temperatures():
    t = np.linspace(200.0, 800.0, 13)
    peaks = {0.25: 655.1, 0.5: 431.0}
    table = pd.DataFrame(
        [
            {"temperature": ti, "concentration": x, "heat_capacity_per_site": 1.0 - 1e-5 * (ti - t0) ** 2}
            for x, t0 in peaks.items()
            for ti in t
        ]
    )
    result = order_disorder_temperatures(table)
    np.testing.assert_allclose(result["temperature"], [655.1, 431.0], rtol=1e-12)


def test_bad_input_is_rejected_early():
    with pytest.raises(PhaseDiagramError, match="strictly increasing"):
        two_phase_regions([0.0, 0.5, 0.5, 1.0], [0.0, 1.0, 1.0, 0.0])
    with pytest.raises(PhaseDiagramError, match="equal length"):
        lower_hull([0.0, 1.0], [0.0])
    with pytest.raises(PhaseDiagramError, match="finite"):
        lower_hull([0.0, 1.0], [0.0, np.nan])
    with pytest.raises(PhaseDiagramError, match="free_energy_per_site"):
        phase_boundaries(pd.DataFrame({"temperature": [1.0], "concentration": [0.5]}))


@pytest.mark.filterwarnings("ignore:No artists with labels")  # the synthetic tables leave the other panels empty
def test_two_phase_bands_meet_on_an_uneven_grid():
    """The figure's two-phase band at each grid temperature reaches halfway to its neighbours, so
    the bands of 300, 400 and 450 K (an uneven grid) tile 250-475 K without a gap."""
    from lattherm.analysis.figures import phase_diagram_figure

    temperatures = [300.0, 400.0, 450.0]
    phases = pd.DataFrame([{"concentration": x, "temperature": t, "direction": "cooling", "phase": phase,
                            "order_l12": 0.0, "order_l10": 0.0}
                           for t in temperatures for x, phase in ((0.25, "L1_2 A3B"), (0.375, "two-phase"), (0.5, "L1_0 AB"))])
    boundaries = pd.DataFrame({"temperature": temperatures, "x_left": 0.25, "x_right": 0.5})
    empty = {"transitions": ["concentration", "phase", "t_low", "t_high"],
             "semi_grand": ["temperature", "dmu", "direction", "concentration_mc", "concentration_mc_err",
                            "concentration_predicted", "concentration_low", "concentration_high"],
             "hysteresis": ["temperature", "dmu_low", "dmu_high"]}
    fig = phase_diagram_figure(boundaries, phases, **{k: pd.DataFrame(columns=c) for k, c in empty.items()})
    bands = sorted((path.vertices[:, 1].min(), path.vertices[:, 1].max())
                   for collection in fig.axes[0].collections for path in collection.get_paths()
                   if np.allclose(sorted(set(path.vertices[:, 0])), [0.25, 0.5]))
    assert bands == [(250.0, 350.0), (350.0, 425.0), (425.0, 475.0)]
