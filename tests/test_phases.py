"""Ordered FCC phases: prototypes, labels from order parameters, StructureMatcher matching,
structure export, and the phase-diagram tables that bracket transitions by hysteresis."""

import numpy as np
import pandas as pd
import pytest
import torch
from ase.io import read

from lattherm.analysis.phase_diagram import phase_diagram_tables, phase_labels, transition_brackets
from lattherm.lattices import make_lattice
from lattherm.observables import standard_observables
from lattherm.phases import (ORDERED, matching_prototype, ordered_configuration, ordered_phase_at, phase_label,
                             write_structures)

SPECIES = ["Cu", "Au"]


@pytest.fixture(scope="module")
def cube():
    return make_lattice("fcc_cubic", [2, 2, 2], a=3.8)


@pytest.mark.parametrize("phase", list(ORDERED))
def test_prototypes_have_their_composition_order_parameters_label_and_structure(cube, phase):
    x = ordered_configuration(cube, phase)
    composition, _ = ORDERED[phase]
    assert x.mean() == composition and ordered_phase_at(composition) == phase
    obs = {name: float(fn(torch.as_tensor(x)[None])[0]) for name, fn in standard_observables(cube).items()}
    assert phase_label(obs["order_l12"], obs["order_l10"], composition) == phase
    assert matching_prototype(cube.to_atoms(x, SPECIES), SPECIES) == phase


def test_a_shifted_variant_matches_and_a_defect_or_disorder_does_not(cube):
    x = ordered_configuration(cube, "L1_0 AB")
    variant = 1 - x  # the other pair of sublattices: the same phase, another variant
    assert matching_prototype(cube.to_atoms(variant, SPECIES), SPECIES) == "L1_0 AB"
    defect = x.copy()
    i, j = np.flatnonzero(x == 1)[0], np.flatnonzero(x == 0)[0]
    defect[i], defect[j] = 0, 1
    assert matching_prototype(cube.to_atoms(defect, SPECIES), SPECIES) is None
    random = np.random.default_rng(0).permutation(x)
    obs = {name: float(fn(torch.as_tensor(random)[None])[0]) for name, fn in standard_observables(cube).items()}
    assert phase_label(obs["order_l12"], obs["order_l10"], 0.5) == "A1"
    assert matching_prototype(cube.to_atoms(np.zeros(32, int), SPECIES), SPECIES) is None


def test_structures_round_trip_as_extxyz_and_cif(cube, tmp_path):
    x = np.stack([ordered_configuration(cube, "L1_2 A3B"), ordered_configuration(cube, "L1_0 AB")])
    write_structures(tmp_path / "s.extxyz", cube, x, SPECIES, [{"temperature": 300.0}, {"temperature": 400.0}])
    frames = read(tmp_path / "s.extxyz", index=":")
    assert [f.info["temperature"] for f in frames] == [300.0, 400.0] and frames[0].info["species"] == "Cu,Au"
    assert [cube.from_atoms(f, SPECIES).tolist() for f in frames] == x.tolist()
    write_structures(tmp_path / "s.cif", cube, x[1], SPECIES)
    assert matching_prototype(read(tmp_path / "s.cif"), SPECIES) == "L1_0 AB"
    with pytest.raises(ValueError, match="extxyz or .cif"):
        write_structures(tmp_path / "s.xyz", cube, x[1], SPECIES)


def _scan(x, temperatures, ordered_below, direction, phase_column):
    """A canonical scan whose order parameter is 1 below ``ordered_below`` and 0 above."""
    order = (np.asarray(temperatures) < ordered_below).astype(float)
    return pd.DataFrame({"temperature": temperatures, "concentration": x, "direction": direction,
                         "order_l12": order if phase_column == "order_l12" else 0.0,
                         "order_l10": order if phase_column == "order_l10" else 0.0,
                         "heat_capacity_per_site": np.exp(-((np.asarray(temperatures) - ordered_below) / 50.0) ** 2),
                         "free_energy_per_site": -0.01 * x * (1 - x) - 1e-5 * np.asarray(temperatures),
                         "free_energy_per_site_err": 1e-6})


def test_hysteresis_brackets_the_transition_and_labels_every_point():
    """Cooling orders only below 600 K (supercooled), heating disorders only above 700 K
    (superheated): T_c lies in [550, 750] on this grid, and the C_v peak is where cooling orders."""
    grid = [400.0, 450.0, 500.0, 550.0, 600.0, 650.0, 700.0, 750.0, 800.0]
    cooling = _scan(0.5, grid, 575.0, "cooling", "order_l10")
    heating = _scan(0.5, grid, 725.0, "heating", "order_l10")
    other = _scan(0.25, grid, 500.0, "cooling", "order_l12")
    tables = phase_diagram_tables([cooling, other, heating])
    phases, transitions = tables["phases"], tables["transitions"]
    assert set(phases.phase) == {"A1", "L1_0 AB", "L1_2 A3B"} and len(phases) == 3 * len(grid)
    row = transitions.iloc[0]
    assert (row.concentration, row.phase, row.t_low, row.t_high) == (0.5, "L1_0 AB", 550.0, 750.0)
    assert row.t_cv_peak == pytest.approx(575.0, abs=30)
    # a scan that never disorders over the grid has no upper bound
    stays = transition_brackets(phase_labels(pd.concat([cooling, _scan(0.5, grid, 900.0, "heating", "order_l10")]),
                                             tables["boundaries"]))
    assert np.isnan(stays.t_high.iloc[0]) and stays.t_low.iloc[0] == 550.0


def test_points_inside_a_two_phase_region_are_labelled_so():
    scans = pd.DataFrame({"temperature": 500.0, "concentration": [0.25, 0.375, 0.5], "order_l12": [1.0, 0.4, 0.0],
                          "order_l10": [0.0, 0.3, 1.0]})
    boundaries = pd.DataFrame({"temperature": [500.0], "x_left": [0.25], "x_right": [0.5]})
    labels = phase_labels(scans, boundaries).phase.tolist()
    assert labels == ["L1_2 A3B", "two-phase", "L1_0 AB"]
