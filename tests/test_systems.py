"""The config-to-objects factory: every model and ensemble, units, and clear errors."""

import math

import numpy as np
import pytest
import torch
import yaml
from ase.build import bulk
from icet import ClusterExpansion, ClusterSpace

from lattherm import K_B_EV
from lattherm.ce.storage import read_cluster_expansion, write_cluster_expansion
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.ising import EdwardsAnderson, Ising, SherringtonKirkpatrick
from lattherm.systems import SystemSpecError, build_system, load_system


def test_ising_defaults_and_units():
    system = build_system({"model": "ising", "lattice": "square", "size": [4, 4]})
    assert isinstance(system.hamiltonian, Ising) and system.hamiltonian.J == 1.0 and system.hamiltonian.h == 0.0
    assert system.name == "ising_square_4x4" and system.n_sites == 16 and system.lattice.n_sites == 16
    assert system.species == ["down", "up"] and system.ensemble == "semi_grand" and system.n_ones is None
    assert system.energy_unit == "J" and system.beta(2.5) == 0.4 and system.temperature(0.4) == 2.5
    assert system.spec == {"model": "ising", "lattice": "square", "size": [4, 4], "a": 1.0, "J": 1.0, "h": 0.0,
                           "species": ["down", "up"], "ensemble": "semi_grand", "dmu": 0.0,
                           "name": "ising_square_4x4"}
    # The normalised spec rebuilds the same system.
    again = build_system(system.spec)
    x = torch.randint(0, 2, (8, 16), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.hamiltonian(x), system.hamiltonian(x))


def test_semi_grand_dmu_wraps_the_hamiltonian():
    system = build_system({"model": "ising", "lattice": "square", "size": [3, 3], "J": 0.5, "dmu": 0.25})
    assert isinstance(system.hamiltonian, SemiGrand) and isinstance(system.hamiltonian.base, Ising)
    x = torch.ones(1, 9, dtype=torch.long)
    assert system.hamiltonian(x).item() == -0.5 * 18 - 0.25 * 9


def test_canonical_count_and_rejection_of_non_integer_counts():
    system = build_system({"model": "edwards_anderson", "lattice": "simple_cubic", "size": [2, 2, 2],
                           "seed": 3, "ensemble": "canonical", "concentration": 0.25})
    assert isinstance(system.hamiltonian, EdwardsAnderson) and system.n_ones == 2
    assert torch.equal(system.hamiltonian.couplings, EdwardsAnderson(system.lattice, seed=3).couplings)
    with pytest.raises(ValueError, match="'concentration' = 0.3 gives 2.4"):
        build_system({"model": "ising", "lattice": "simple_cubic", "size": [2, 2, 2], "ensemble": "canonical",
                      "concentration": 0.3})


def test_sherrington_kirkpatrick_without_lattice():
    system = build_system({"model": "sherrington_kirkpatrick", "n_sites": 20, "seed": 2})
    assert system.lattice is None and isinstance(system.hamiltonian, SherringtonKirkpatrick)
    assert torch.equal(system.hamiltonian.coupling_matrix, SherringtonKirkpatrick(20, seed=2).coupling_matrix)
    on_lattice = build_system({"model": "sherrington_kirkpatrick", "lattice": "square", "size": [4, 4]})
    assert on_lattice.n_sites == 16


@pytest.mark.parametrize("spec,message", [
    ({"model": "ising", "lattice": "square", "size": [4, 4], "temperature": 2}, "unknown system keys"),
    ({"model": "potts", "lattice": "square", "size": [4, 4]}, "'model' must be one of"),
    ({"model": "ising", "lattice": "hexagonal", "size": [4, 4]}, "'lattice' must be one of"),
    ({"model": "ising", "size": [4, 4]}, "needs a 'lattice'"),
    ({"model": "ising", "lattice": "square", "size": [4, 0]}, "'size' must be a list of positive integers"),
    ({"model": "ising", "lattice": "square", "size": [4, 4], "seed": 1}, "do not apply to model 'ising'"),
    ({"model": "ising", "lattice": "square", "size": [4, 4], "J": "one"}, "'J' must be a finite number"),
    ({"model": "ising", "lattice": "square", "size": [4, 4], "ensemble": "nvt"}, "'ensemble' must be one of"),
    ({"model": "ising", "lattice": "square", "size": [4, 4], "ensemble": "canonical"}, "needs a 'concentration'"),
    ({"model": "ising", "lattice": "square", "size": [4, 4], "concentration": 0.5}, "canonical ensemble only"),
    ({"model": "ising", "lattice": "square", "size": [4, 4], "ensemble": "canonical", "concentration": 0.5,
      "dmu": 0.1}, "semi_grand ensemble only"),
    ({"model": "ising", "lattice": "square", "size": [4, 4], "species": ["Cu", "Cu"]}, "two distinct names"),
    ({"model": "sherrington_kirkpatrick"}, "needs 'n_sites' or a 'lattice'"),
    ({"model": "sherrington_kirkpatrick", "lattice": "square", "size": [4, 4], "n_sites": 9}, "differs"),
    ({"model": "cluster_expansion", "lattice": "fcc", "size": [2, 2, 4], "species": ["Cu", "Au"]}, "'ce_file'"),
    ({"model": "cluster_expansion", "lattice": "fcc", "size": [2, 2, 4], "ce_file": "x.json"}, "needs 'species'"),
    ({"model": "cluster_expansion", "lattice": "fcc", "size": [2, 2, 4], "ce_file": "x.json", "species": ["Cu", "Au"],
      "ce_trust_pickle": "yes"}, "'ce_trust_pickle' must be true or false"),
])
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(SystemSpecError, match=message):
        build_system(spec)


def test_bad_temperatures():
    system = build_system({"model": "ising", "lattice": "square", "size": [2, 2]})
    for t in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="temperature must be positive"):
            system.beta(t)
    for b in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="beta must be finite and non-negative"):
            system.temperature(b)


def test_infinite_temperature_is_beta_zero():
    """Thermodynamic integration starts at T = inf, i.e. beta = 0, in every unit system."""
    spin = build_system({"model": "ising", "lattice": "square", "size": [2, 2]})
    assert spin.beta(math.inf) == 0.0 and spin.temperature(0.0) == math.inf
    assert spin.temperature(spin.beta(2.5)) == pytest.approx(2.5, rel=1e-15)


@pytest.fixture(scope="module")
def cuau_ce_file(tmp_path_factory):
    """A small CuAu cluster expansion (pairs to 6 Å, triplets to 4.5 Å) with fixed parameters."""
    space = ClusterSpace(bulk("Cu", "fcc", a=3.8), cutoffs=[6.0, 4.5], chemical_symbols=["Cu", "Au"])
    parameters = np.random.default_rng(0).normal(0.0, 0.02, len(space))
    return write_cluster_expansion(ClusterExpansion(space, parameters), tmp_path_factory.mktemp("ce") / "cuau.json")


def test_cluster_expansion_system_matches_icet(cuau_ce_file, tmp_path):
    spec = {"model": "cluster_expansion", "lattice": "fcc", "size": [2, 2, 4], "ce_file": str(cuau_ce_file),
            "species": ["Cu", "Au"], "ensemble": "canonical", "concentration": 0.5}
    path = tmp_path / "cuau.yaml"
    path.write_text(yaml.safe_dump(spec))
    system = load_system(path)
    assert system.spec["a"] == 3.8 and system.n_ones == 8 and system.energy_unit == "eV"
    np.testing.assert_allclose(system.beta(600.0), 1.0 / (K_B_EV * 600.0), rtol=1e-15)
    np.testing.assert_allclose(system.temperature(system.beta(600.0)), 600.0, rtol=1e-15)
    ce = read_cluster_expansion(cuau_ce_file)
    x = torch.randint(0, 2, (4, 16), generator=torch.Generator().manual_seed(1))
    expected = [ce.predict(system.lattice.to_atoms(row, system.species)) * 16 for row in x.numpy()]
    np.testing.assert_allclose(system.hamiltonian(x).numpy(), expected, rtol=1e-12, atol=1e-12)
