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


# -- the O(N) geometry against the dense construction it replaced ----------------------------
def _dense_shell_distances(lat, n_shells):
    """The former ``shell_distances``: distinct values of the dense minimum-image matrix."""
    distances = lat.distances[lat.distances > 1e-6]
    _, first = np.unique(np.round(distances, 6), return_index=True)
    d = distances[first]
    if len(d) < n_shells:
        raise LatticeError(f"supercell {lat.repeats} has only {len(d)} neighbour shells")
    return d[:n_shells]


def _dense_bonds_at(lat, target):
    """The former ``_bonds_at``: all bonds of length ``target`` over periodic images, O(N^2)
    per image shift, i < j pairs (self-bonds: one of each pair of opposite images), lexsorted."""
    frac = lat.fractional
    recip = np.linalg.inv(lat.cell).T
    reach = int(np.ceil(target / np.min(1.0 / np.linalg.norm(recip, axis=1)))) + 1
    rng = [range(-reach, reach + 1) if p else range(0, 1) for p in lat.atoms.pbc]
    shifts = np.array([(i, j, k) for i in rng[0] for j in rng[1] for k in rng[2]], dtype=float)
    pairs = []
    for t in shifts:
        vec = (frac[None, :, :] - frac[:, None, :] + t) @ lat.cell
        dist = np.linalg.norm(vec, axis=-1)
        ii, jj = np.nonzero(np.abs(dist - target) < 1e-4)
        pairs.append(np.stack([ii, jj], axis=1))
    allpairs = np.concatenate(pairs)
    keep = allpairs[:, 0] < allpairs[:, 1]
    self_bonds = allpairs[allpairs[:, 0] == allpairs[:, 1]]
    both = np.concatenate([allpairs[keep], self_bonds[: len(self_bonds) // 2]])
    order = np.lexsort((both[:, 1], both[:, 0]))
    return both[order].astype(np.int64)


def _dense_neighbour_table(lat, pairs):
    """The former ``neighbour_table``: rows filled pair by pair (a self-bond gives two entries)."""
    z = 2 * len(pairs) // lat.n_sites
    table = [[] for _ in range(lat.n_sites)]
    for i, j in pairs:
        table[i].append(j)
        table[j].append(i)
    if any(len(row) != z for row in table):
        raise LatticeError("sites have unequal coordination; the lattice is not uniform")
    return np.asarray(table, dtype=np.int64)


def _assert_geometry_matches_dense(lat, n_shells=3):
    available = len(np.unique(np.round(lat.distances[lat.distances > 1e-6], 6)))
    shells = min(n_shells, available)
    np.testing.assert_allclose(lat.shell_distances(shells), _dense_shell_distances(lat, shells), rtol=0, atol=1e-12)
    if available < n_shells:
        with pytest.raises(LatticeError, match=f"only {available} neighbour shells"):
            lat.shell_distances(n_shells)
    for shell in range(1, shells + 1):
        expected = _dense_bonds_at(lat, _dense_shell_distances(lat, shell)[shell - 1])
        pairs = lat.neighbour_pairs(shell)
        assert pairs.dtype == np.int64 and pairs.shape == expected.shape
        np.testing.assert_array_equal(pairs, expected)
        table = lat.neighbour_table(shell)
        assert table.dtype == np.int64
        np.testing.assert_array_equal(table, _dense_neighbour_table(lat, expected))


SQUARE_SIZES = [(n1, n2) for n1 in range(1, 6) for n2 in range(1, 8)]


@pytest.mark.parametrize("size", SQUARE_SIZES, ids=[f"{a}x{b}" for a, b in SQUARE_SIZES])
def test_square_geometry_equals_dense_construction(size):
    _assert_geometry_matches_dense(make_lattice("square", size))


FCC_SIZES = [(1, 1, 1), (1, 1, 2), (1, 2, 3), (2, 1, 1), (2, 2, 1), (2, 2, 2), (2, 2, 4), (3, 2, 2), (3, 1, 4),
             (3, 3, 3), (3, 3, 4)]


@pytest.mark.parametrize("size", FCC_SIZES, ids=["x".join(map(str, s)) for s in FCC_SIZES])
def test_fcc_primitive_geometry_equals_dense_construction(size):
    """The skewed primitive FCC cell, including supercells with self-bonds and repeated images."""
    _assert_geometry_matches_dense(make_lattice("fcc", size, a=A_CUAU))


OTHER_CELLS = [("simple_cubic", (1, 1, 1)), ("simple_cubic", (1, 2, 3)), ("simple_cubic", (2, 2, 2)),
               ("simple_cubic", (3, 4, 5)), ("fcc_cubic", (1, 1, 1)), ("fcc_cubic", (2, 2, 2)),
               ("fcc_cubic", (1, 2, 3)), ("fcc_cubic", (3, 3, 3)), ("bcc", (1, 1, 1)), ("bcc", (2, 2, 2)),
               ("bcc", (2, 3, 4)), ("bcc", (4, 4, 4)), ("bcc_cubic", (1, 1, 1)), ("bcc_cubic", (2, 1, 2)),
               ("bcc_cubic", (3, 3, 3))]


@pytest.mark.parametrize("kind,size", OTHER_CELLS, ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in OTHER_CELLS])
def test_geometry_equals_dense_construction(kind, size):
    _assert_geometry_matches_dense(make_lattice(kind, size, a=A_FE if kind.startswith("bcc") else A_CUAU))


def test_geometry_of_a_repeated_open_axis_equals_dense_construction():
    """Two layers along the square lattice's open z axis: no periodic image across it, so the
    layers bond once and the sites are not uniform (the table refuses, as before)."""
    square = make_lattice("square", 3)
    from lattherm.lattices import Lattice

    lat = Lattice(kind="square", primitive=square.primitive, repeats=(3, 4, 2), dimension=2)
    np.testing.assert_allclose(lat.shell_distances(3), _dense_shell_distances(lat, 3), rtol=0, atol=1e-12)
    for shell in (1, 2):
        target = _dense_shell_distances(lat, shell)[shell - 1]
        np.testing.assert_array_equal(lat.neighbour_pairs(shell), _dense_bonds_at(lat, target))


def test_site_order_is_cell_arithmetic():
    """The O(N) bonds rely on site = ((i1 n2 + i2) n3 + i3) n_basis + b at r_b + i A."""
    for kind, size in (("fcc_cubic", (2, 3, 4)), ("bcc_cubic", (3, 1, 2)), ("square", (3, 5))):
        lat = make_lattice(kind, size, a=A_CUAU)
        prim = lat.primitive
        expected = prim.get_positions()[lat.basis_index] + lat.cell_index @ prim.cell[:]
        np.testing.assert_allclose(lat.positions, expected, atol=1e-9)


def test_large_geometry_without_dense_arrays():
    """A 1000 x 1000 square lattice and 16 x 16 x 16 conventional FCC cells (16,384 sites) get
    their shells, bonds and tables without the N x N minimum-image matrix."""
    lat = make_lattice("square", 1000)
    np.testing.assert_allclose(lat.shell_distances(3), [1.0, math.sqrt(2.0), 2.0], atol=1e-12)
    pairs = lat.neighbour_pairs(1)
    assert pairs.shape == (2 * lat.n_sites, 2)
    table = lat.neighbour_table(1)
    site = 1000 * 500 + 999  # right edge: neighbours wrap to column 0
    np.testing.assert_array_equal(table[site], [499 * 1000 + 999, 500 * 1000, 500 * 1000 + 998, 501 * 1000 + 999])
    fcc = make_lattice("fcc_cubic", 16, a=A_CUAU)
    assert fcc.neighbour_table(1).shape == (16384, 12) and len(fcc.neighbour_pairs(1)) == 6 * 16384
    assert "displacements" not in vars(lat) and "displacements" not in vars(fcc)


def test_repeat_equals_ase_repeat():
    """The vectorised supercell has exactly ASE's ``Atoms.repeat`` sites, positions and cell."""
    for kind, size, a in (("fcc", (3, 2, 4), A_CUAU), ("fcc_cubic", (2, 3, 1), 3.6149), ("bcc", (4, 1, 3), A_FE),
                          ("bcc_cubic", (2, 2, 3), A_FE), ("square", (5, 3), 1.0), ("simple_cubic", (2, 3, 4), 0.7)):
        lat = make_lattice(kind, size, a=a)
        reference = lat.primitive.repeat(lat.repeats)
        np.testing.assert_array_equal(lat.positions, reference.positions)
        np.testing.assert_array_equal(lat.atoms.numbers, reference.numbers)
        np.testing.assert_array_equal(lat.cell, reference.cell[:])
        np.testing.assert_array_equal(lat.atoms.pbc, reference.pbc)
        assert lat.atoms.info == reference.info


def test_ising_neighbour_tables_follow_bond_order():
    """The Ising tables (vectorised) list, per site, the partners in bond order, as the former
    per-bond loop did; couplings travel with their bonds."""
    from lattherm.hamiltonians.ising import _neighbour_tables

    rng = np.random.default_rng(5)
    for kind, size in (("square", (2, 2)), ("square", (1, 3)), ("square", (5, 7)), ("fcc", (1, 2, 3)),
                       ("bcc_cubic", (2, 1, 2))):
        lat = make_lattice(kind, size, a=A_CUAU)
        bonds = lat.neighbour_pairs(1)[rng.permutation(len(lat.neighbour_pairs(1)))]
        couplings = rng.normal(size=len(bonds))
        rows = [[] for _ in range(lat.n_sites)]
        weights = [[] for _ in range(lat.n_sites)]
        for (i, j), J in zip(bonds, couplings):
            rows[i].append(j)
            weights[i].append(J)
            rows[j].append(i)
            weights[j].append(J)
        neighbours, coupling = _neighbour_tables(bonds, couplings, lat.n_sites)
        np.testing.assert_array_equal(neighbours, np.asarray(rows))
        np.testing.assert_array_equal(coupling, np.asarray(weights))
    with pytest.raises(ValueError, match=r"unequal coordination \[0, 1\]"):
        _neighbour_tables(np.array([[0, 1]]), np.array([1.0]), 3)


def test_dense_geometry_refuses_above_its_limit():
    from lattherm.lattices import MAX_DENSE_SITES

    lat = make_lattice("square", (65, 64))
    assert lat.n_sites > MAX_DENSE_SITES
    with pytest.raises(LatticeError, match=rf"4160-site square .* N x N x 9 x 3 .* 3\.48 GiB; .* limited to {MAX_DENSE_SITES}"):
        lat.distances
    assert lat.neighbour_table(1).shape == (4160, 4)  # the O(N) geometry is not limited
