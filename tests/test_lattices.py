"""Lattice geometry against closed-form shell counts, ASE's minimum-image distances,
pymatgen's structure matcher and the round trips through ASE, pymatgen and CIF."""

import math

import numpy as np
import pytest
from ase.geometry import get_distances
from ase.io import read as ase_read
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from lattherm.lattices import LatticeError, make_lattice

A_CUAU = 3.8
A_FE = 2.87


def coordination(lattice, shell):
    return 2 * len(lattice.neighbour_pairs(shell)) // lattice.n_sites


def test_square_lattice_is_row_major_with_4_4_4_shells():
    L = 5
    lat = make_lattice("square", L)
    assert lat.n_sites == L * L and lat.dimension == 2
    i, j = np.divmod(np.arange(L * L), L)
    np.testing.assert_allclose(lat.positions, np.stack([i, j, 0 * i], axis=1), atol=1e-12)
    np.testing.assert_allclose(lat.shell_distances(3), [1.0, math.sqrt(2.0), 2.0])
    assert [coordination(lat, s) for s in (1, 2, 3)] == [4, 4, 4]


def test_rectangular_square_lattice():
    lat = make_lattice("square", (3, 4))
    assert lat.n_sites == 12 and lat.repeats == (3, 4, 1)
    assert coordination(lat, 1) == 4


def test_simple_cubic_shells():
    lat = make_lattice("simple_cubic", 4, a=2.0)
    assert lat.n_sites == 64
    np.testing.assert_allclose(lat.shell_distances(3), 2.0 * np.sqrt([1.0, 2.0, 3.0]))
    assert [coordination(lat, s) for s in (1, 2, 3)] == [6, 12, 8]


@pytest.mark.parametrize("kind,size,n_sites", [("fcc", (2, 2, 4), 16), ("fcc", (4, 4, 8), 128),
                                               ("fcc_cubic", (2, 2, 2), 32)])
def test_fcc_shells(kind, size, n_sites):
    lat = make_lattice(kind, size, a=A_CUAU)
    assert lat.n_sites == n_sites
    expected = A_CUAU * np.sqrt([0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(lat.shell_distances(4), expected, atol=1e-6)
    assert [coordination(lat, s) for s in (1, 2, 3, 4)] == [12, 6, 24, 12]


@pytest.mark.parametrize("kind,size,n_sites", [("bcc", (4, 4, 4), 64), ("bcc", (6, 6, 6), 216),
                                               ("bcc_cubic", (3, 3, 3), 54)])
def test_bcc_shells(kind, size, n_sites):
    """BCC shells: 8 at a sqrt(3)/2, 6 at a, 12 at a sqrt(2), 24 at a sqrt(11)/2."""
    lat = make_lattice(kind, size, a=A_FE)
    assert lat.n_sites == n_sites
    expected = A_FE * np.array([math.sqrt(3) / 2, 1.0, math.sqrt(2), math.sqrt(11) / 2])
    np.testing.assert_allclose(lat.shell_distances(4), expected, atol=1e-6)
    assert [coordination(lat, s) for s in (1, 2, 3, 4)] == [8, 6, 12, 24]
    # Same volume per site whichever cell is repeated: a^3 / 2.
    np.testing.assert_allclose(lat.atoms.get_volume() / lat.n_sites, A_FE**3 / 2, rtol=1e-12)


def test_bcc_cubic_cell_is_a_supercell_of_the_primitive_one():
    """Every site of the conventional cells is a lattice vector of the primitive BCC cell, and
    a decoration survives the round trip through ``ase.Atoms``."""
    cubic = make_lattice("bcc_cubic", (2, 2, 2), a=A_FE)
    x = np.random.default_rng(3).integers(0, 2, cubic.n_sites)
    atoms = cubic.to_atoms(x, ["Fe", "Cr"])
    np.testing.assert_array_equal(cubic.from_atoms(atoms, ["Fe", "Cr"]), x)
    prim = make_lattice("bcc", 1, a=A_FE).cell
    frac = np.linalg.solve(prim.T, cubic.positions.T).T
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-9)


@pytest.mark.parametrize("kind,size", [("square", (4, 3)), ("simple_cubic", (3, 3, 3)),
                                       ("fcc", (2, 2, 4)), ("fcc", (3, 2, 2)), ("fcc_cubic", (2, 1, 1)),
                                       ("bcc", (3, 2, 4)), ("bcc_cubic", (2, 1, 2))])
def test_minimum_image_displacements_match_ase(kind, size):
    lat = make_lattice(kind, size, a=A_CUAU)
    d = lat.displacements
    np.testing.assert_allclose(d, -d.transpose(1, 0, 2), atol=1e-12)
    _, ase_dist = get_distances(lat.positions, cell=lat.atoms.cell, pbc=lat.atoms.pbc)
    np.testing.assert_allclose(lat.distances, ase_dist, atol=1e-9)
    # Each displacement is r_j - r_i plus a whole supercell translation.
    raw = lat.positions[None, :, :] - lat.positions[:, None, :]
    shift = np.linalg.solve(lat.cell.T, (d - raw).reshape(-1, 3).T)
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-9)


@pytest.mark.parametrize("kind,size,shell,images_coincide", [
    ("square", 2, 1, False), ("square", 4, 2, False), ("fcc", (2, 2, 4), 1, False),
    ("fcc", (4, 4, 8), 3, False), ("simple_cubic", 3, 1, False),
    ("fcc", (2, 2, 4), 3, True),  # some third neighbours are periodic images of first neighbours
    ("bcc", (4, 4, 4), 1, False), ("bcc_cubic", (3, 3, 3), 2, False),
])
def test_neighbour_tables_are_symmetric_and_at_the_shell_distance(kind, size, shell, images_coincide):
    lat = make_lattice(kind, size, a=A_CUAU)
    table = lat.neighbour_table(shell)
    assert table.shape == (lat.n_sites, coordination(lat, shell))
    counts = np.zeros((lat.n_sites, lat.n_sites), dtype=int)
    np.add.at(counts, (np.repeat(np.arange(lat.n_sites), table.shape[1]), table.ravel()), 1)
    np.testing.assert_array_equal(counts, counts.T)
    target = lat.shell_distances(shell)[shell - 1]
    nearest_image = lat.distances[np.arange(lat.n_sites)[:, None], table]
    assert np.all(nearest_image <= target + 1e-9)
    assert np.allclose(nearest_image, target, atol=1e-9) != images_coincide


def test_l2_square_repeats_bonds_through_periodic_images():
    lat = make_lattice("square", 2)
    pairs = lat.neighbour_pairs(1)
    # 2 N bonds as on any square lattice; each distinct neighbour pair twice.
    assert len(pairs) == 2 * lat.n_sites
    _, multiplicity = np.unique(pairs, axis=0, return_counts=True)
    assert set(multiplicity) == {2}


@pytest.mark.parametrize("kind,size", [("fcc", (2, 2, 4)), ("fcc", (4, 4, 8)), ("fcc_cubic", (2, 2, 2))])
def test_fcc_sublattices_are_simple_cubic_of_side_a(kind, size):
    lat = make_lattice(kind, size, a=A_CUAU)
    sub = lat.fcc_sublattices()
    np.testing.assert_array_equal(np.bincount(sub, minlength=4), [lat.n_sites // 4] * 4)
    steps = lat.displacements / A_CUAU
    same = sub[:, None] == sub[None, :]
    integer = np.all(np.abs(steps - np.round(steps)) < 1e-9, axis=-1)
    # Same sublattice <=> the displacement is a simple-cubic lattice vector of side a.
    np.testing.assert_array_equal(integer, same)
    # Nearest neighbours always sit on different sublattices, second neighbours on the same one.
    table1, table2 = lat.neighbour_table(1), lat.neighbour_table(2)
    assert np.all(sub[table1] != sub[:, None]) and np.all(sub[table2] == sub[:, None])


def test_fcc_sublattices_reject_incommensurate_cells():
    with pytest.raises(LatticeError, match="sublattices are not periodic"):
        make_lattice("fcc", (3, 2, 2), a=A_CUAU).fcc_sublattices()
    with pytest.raises(LatticeError, match="FCC"):
        make_lattice("square", 4).fcc_sublattices()
    with pytest.raises(LatticeError, match="FCC"):
        make_lattice("bcc_cubic", 2, a=A_FE).fcc_sublattices()


def test_atoms_round_trip_in_any_atom_order():
    lat = make_lattice("fcc", (2, 2, 4), a=A_CUAU)
    x = np.random.default_rng(0).integers(0, 2, lat.n_sites)
    atoms = lat.to_atoms(x, ["Cu", "Au"])
    assert atoms.get_chemical_symbols().count("Au") == x.sum()
    np.testing.assert_array_equal(lat.from_atoms(atoms, ["Cu", "Au"]), x)
    order = np.random.default_rng(1).permutation(lat.n_sites)
    shuffled = atoms[order]
    shuffled.positions += lat.cell[0]  # a periodic image of the same structure
    np.testing.assert_array_equal(lat.from_atoms(shuffled, ["Cu", "Au"]), x)


def test_structure_and_cif_export(tmp_path):
    lat = make_lattice("fcc", (2, 2, 4), a=A_CUAU)
    x = np.random.default_rng(2).integers(0, 2, lat.n_sites)
    structure = lat.to_structure(x, ["Cu", "Au"])
    assert structure.composition["Au"] == x.sum() and structure.composition["Cu"] == lat.n_sites - x.sum()
    path = tmp_path / "cuau.cif"
    lat.write_cif(path, x, ["Cu", "Au"])
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    assert matcher.fit(structure, Structure.from_file(path))
    atoms = ase_read(path)
    assert len(atoms) == lat.n_sites and atoms.get_chemical_symbols().count("Au") == x.sum()
    np.testing.assert_allclose(atoms.get_volume(), lat.atoms.get_volume(), rtol=1e-6)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(LatticeError, match="unknown lattice kind"):
        make_lattice("hexagonal", 4)
    with pytest.raises(LatticeError, match="two sizes"):
        make_lattice("square", (4, 4, 4))
    with pytest.raises(LatticeError, match="three sizes"):
        make_lattice("fcc", (2, 2))
    with pytest.raises(LatticeError, match="positive integers"):
        make_lattice("simple_cubic", (2, 0, 2))
    with pytest.raises(LatticeError, match="integers"):
        make_lattice("square", (4, 4.5))
    with pytest.raises(LatticeError, match="lattice constant"):
        make_lattice("fcc", 2, a=-1.0)
    lat = make_lattice("square", 3)
    with pytest.raises(LatticeError, match="configuration has 2 sites, lattice has 9"):
        lat.to_atoms([0, 1], ["Cu", "Au"])
    with pytest.raises(LatticeError, match="species indices"):
        lat.to_atoms([0] * 8 + [2], ["Cu", "Au"])
    with pytest.raises(LatticeError, match="structure has"):
        lat.from_atoms(make_lattice("square", 2).to_atoms([0] * 4, ["Cu", "Au"]), ["Cu", "Au"])
    with pytest.raises(LatticeError, match="not in"):
        lat.from_atoms(lat.to_atoms([1] * 9, ["Cu", "Ag"]), ["Cu", "Au"])
    with pytest.raises(LatticeError, match="neighbour shells"):
        make_lattice("square", 2).shell_distances(5)
