"""The published CuAu model: icet conversion against CLEASE itself, hull energies."""

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from clease.corr_func import CorrFunction
from clease.settings import CEBulk, Concentration
from clease.tools import wrap_and_sort_by_position

from lattherm.ce.fit import au_fraction, enumerated_structures
from lattherm.ce.hull import formation_energies, ground_states, hull_table
from lattherm.ce.published import ECI_FILE, published_cluster_expansion, write_published_ce
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice

SPECIES = ("Cu", "Au")


@pytest.fixture(scope="module")
def clease_energy(tmp_path_factory):
    """The published model evaluated by CLEASE (polynomial basis), eV/atom."""
    settings = CEBulk(Concentration(basis_elements=[list(SPECIES)]), crystalstructure="fcc", a=3.8,
                      size=[2, 2, 2], max_cluster_dia=[6.0, 4.5, 4.5], basis_func_type="polynomial",
                      db_name=str(tmp_path_factory.mktemp("clease") / "clease.db"))
    eci = json.loads(ECI_FILE.read_text())
    corr = CorrFunction(settings)

    def energy(atoms):
        # CLEASE's updater reads symbols in its template's (sorted-by-position) order
        cf = corr.get_cf(wrap_and_sort_by_position(atoms.copy()))
        return sum(value * cf[name] for name, value in eci.items())

    return energy


@pytest.fixture(scope="module")
def ce():
    return published_cluster_expansion()


@pytest.mark.parametrize("size", [(2, 2, 4), (4, 4, 4), (4, 4, 8)])
def test_random_configurations_match_clease(ce, clease_energy, size):
    lattice = make_lattice("fcc", size, a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    gen = torch.Generator().manual_seed(sum(size))
    x = (torch.rand(12, lattice.n_sites, generator=gen) < torch.rand(12, 1, generator=gen)).to(torch.int64)
    reference = np.array([clease_energy(lattice.to_atoms(row, SPECIES)) for row in x.numpy()])
    # required: 1e-6 eV/atom; the conversion is exact, so it holds to rounding
    np.testing.assert_allclose(ham.energy_per_site(x).numpy(), reference, rtol=0, atol=1e-12)


def ordered(kind):
    """L1_2 Cu3Au, L1_0 CuAu, L1_2 CuAu3 on the conventional cubic cell (sites at 0, (0 1/2 1/2),
    (1/2 0 1/2), (1/2 1/2 0)): L1_2 puts the minority on one simple-cubic sublattice, L1_0
    alternates (001) planes."""
    atoms = bulk("Cu", "fcc", a=3.8, cubic=True)
    atoms.set_chemical_symbols({"Cu3Au": ["Au", "Cu", "Cu", "Cu"], "CuAu": ["Au", "Cu", "Cu", "Au"],
                                "CuAu3": ["Cu", "Au", "Au", "Au"]}[kind])
    return atoms


@pytest.mark.parametrize("kind,x,published_mev", [("Cu3Au", 0.25, -34.1672), ("CuAu", 0.5, -36.1825),
                                                  ("CuAu3", 0.75, -18.7544)])
def test_hull_formation_energies(ce, clease_energy, kind, x, published_mev):
    atoms = ordered(kind)
    assert au_fraction(atoms) == x
    pure = [bulk(s, "fcc", a=3.8) for s in SPECIES]
    e_form = ce.predict(atoms) - (1 - x) * ce.predict(pure[0]) - x * ce.predict(pure[1])
    assert abs(1e3 * e_form - published_mev) < 0.1
    e_clease = clease_energy(atoms) - (1 - x) * clease_energy(pure[0]) - x * clease_energy(pure[1])
    assert abs(e_form - e_clease) < 1e-12


def test_enumeration_hull_is_l12_l10_l12(ce):
    """Among all FCC structures up to 8 atoms these three are the only hull vertices."""
    structures = enumerated_structures(8)
    x = np.array([au_fraction(s) for s in structures])
    form = formation_energies(x, np.array([ce.predict(s) for s in structures]))
    gs = ground_states(hull_table(x, form, [s.get_chemical_formula() for s in structures]))
    assert list(gs["x_au"]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(1e3 * gs["formation_energy_ev_per_atom"], [0, -34.1672, -36.1825, -18.7544, 0],
                               atol=1e-3)
    expected = {0.25: ordered("Cu3Au"), 0.5: ordered("CuAu"), 0.75: ordered("CuAu3")}
    cs = ce.get_cluster_space_copy()
    for _, row in gs.iterrows():
        if row["x_au"] in expected:  # the hull structure is the ordered phase (same cluster vector)
            index = int(np.flatnonzero(np.isclose(form, row["formation_energy_ev_per_atom"]) & (x == row["x_au"]))[0])
            np.testing.assert_allclose(cs.get_cluster_vector(structures[index]),
                                       cs.get_cluster_vector(expected[row["x_au"]]), atol=1e-12)


def test_write_published_ce_round_trip(ce, tmp_path):
    path = write_published_ce(tmp_path / "published.json")
    lattice = make_lattice("fcc", (2, 2, 4), a=3.8)
    x = torch.randint(0, 2, (4, 16), generator=torch.Generator().manual_seed(0))
    a = ClusterExpansionHamiltonian.from_file(path, lattice).energy(x)
    b = ClusterExpansionHamiltonian(ce, lattice).energy(x)
    assert torch.equal(a, b)
    assert len(ce.parameters) == 11
