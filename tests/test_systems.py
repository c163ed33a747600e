"""Systems as data: the typed system block, its schema, every model and ensemble, units, errors."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml
from ase.build import bulk
from icet import ClusterExpansion, ClusterSpace

from lattherm import K_B_EV
from lattherm.ce.fit import AlloyConfig
from lattherm.ce.storage import read_cluster_expansion, write_cluster_expansion
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.ising import EdwardsAnderson, Ising, SherringtonKirkpatrick
from lattherm.analysis.neural_free_energy import NeuralPhaseDiagramConfig
from lattherm.mcmc.phase_scans import PhaseDiagramConfig
from lattherm.schema import ConfigError, schema, schema_defaults
from lattherm.systems import McmcConfig, SystemConfig, build_system, load_system

SQUARE = {"model": "ising", "lattice": "square", "train_size": [4, 4]}


@pytest.mark.parametrize("cls,definition", [(SystemConfig, "system"), (McmcConfig, "mcmc"),
                                            (AlloyConfig, "alloy"), (PhaseDiagramConfig, "phase_diagram"),
                                            (NeuralPhaseDiagramConfig, "neural_phase_diagram")])
def test_schema_and_config_classes_agree(cls, definition):
    """One definition of every block: the schema's properties, defaults and required fields are
    the class's fields, defaults and fields without a default."""
    block = schema()["$defs"][definition]
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(block["properties"]) == fields
    assert set(block.get("required", [])) == fields - set(schema_defaults(cls))
    assert {k: v["default"] for k, v in block["properties"].items() if "default" in v} == schema_defaults(cls)


def test_ising_defaults_and_units():
    system = build_system(SQUARE, name="ising")
    assert isinstance(system.hamiltonian, Ising) and system.hamiltonian.J == 1.0 and system.hamiltonian.h == 0.0
    assert system.name == "ising" and system.n_sites == 16 and system.lattice.n_sites == 16 and system.size == [4, 4]
    assert system.species == ["down", "up"] and system.ensemble == "semi_grand" and system.n_ones is None
    assert system.dmu == 0.0 and system.energy_unit == "J" and system.beta(2.5) == 0.4 and system.temperature(0.4) == 2.5
    # The block written out (as the workflow does) rebuilds the same system, at any of its sizes.
    again = build_system(SystemConfig.from_dict(system.config.to_dict()), size=[4, 4])
    x = torch.randint(0, 2, (8, 16), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.hamiltonian(x), system.hamiltonian(x))
    assert build_system(SQUARE, size=[8, 4]).n_sites == 32


def test_semi_grand_dmu_wraps_the_hamiltonian():
    system = build_system({**SQUARE, "train_size": [3, 3], "J": 0.5, "dmu": 0.25})
    assert isinstance(system.hamiltonian, SemiGrand) and isinstance(system.hamiltonian.base, Ising)
    x = torch.ones(1, 9, dtype=torch.long)
    assert system.hamiltonian(x).item() == -0.5 * 18 - 0.25 * 9 and system.dmu == 0.25


def test_spin_glasses_and_their_coupling_draws():
    system = build_system({"model": "edwards_anderson", "lattice": "simple_cubic", "train_size": [2, 2, 2],
                           "coupling_seed": 3, "ensemble": "canonical", "concentration": 0.25})
    assert isinstance(system.hamiltonian, EdwardsAnderson) and system.n_ones == 2
    assert torch.equal(system.hamiltonian.couplings, EdwardsAnderson(system.lattice, seed=3).couplings)
    assert set(system.hamiltonian.couplings.tolist()) == {-1.0, 1.0}
    gaussian = build_system({"model": "edwards_anderson", "lattice": "square", "train_size": [4, 4],
                             "couplings": "gaussian", "coupling_seed": 3})
    couplings = gaussian.hamiltonian.couplings
    assert len(set(couplings.tolist())) == len(couplings) and gaussian.hamiltonian.identity()["couplings"] == "gaussian"
    sk = build_system({"model": "sherrington_kirkpatrick", "train_size": [20], "coupling_seed": 2})
    assert sk.lattice is None and isinstance(sk.hamiltonian, SherringtonKirkpatrick) and sk.n_sites == 20
    assert torch.equal(sk.hamiltonian.coupling_matrix, SherringtonKirkpatrick(20, seed=2).coupling_matrix)
    pm = build_system({"model": "sherrington_kirkpatrick", "train_size": [20], "couplings": "pm_j"})
    assert torch.allclose(pm.hamiltonian.coupling_matrix.abs().sum(1), torch.full((20,), 19 / math.sqrt(20),
                                                                                    dtype=torch.float64))


@pytest.mark.parametrize("block,message", [
    ({**SQUARE, "temperature": 2}, r"system: Additional properties are not allowed \('temperature'"),
    ({**SQUARE, "model": "potts"}, "system.model: 'potts' is not one of"),
    ({**SQUARE, "lattice": "hexagonal"}, "system.lattice: 'hexagonal' is not one of"),
    ({"model": "ising", "train_size": [4, 4]}, "system.lattice = None: model 'ising' takes lattice square"),
    ({**SQUARE, "train_size": [4, 0]}, r"system.train_size\[1\]: 0 is less than the minimum of 1"),
    ({**SQUARE, "train_size": [4, 4, 4]}, r"system.train_size = \[4, 4, 4\]: square lattice needs 2 sizes"),
    ({**SQUARE, "coupling_seed": 1}, "system.coupling_seed does not apply to model 'ising'"),
    ({**SQUARE, "J": "one"}, "system.J: 'one' is not of type 'number'"),
    ({**SQUARE, "J": math.nan}, "system.J = nan is not a finite number"),
    ({**SQUARE, "ensemble": "nvt"}, "system.ensemble: 'nvt' is not one of"),
    ({**SQUARE, "ensemble": "canonical"}, "system.concentration is missing"),
    ({**SQUARE, "concentration": 0.5}, "system.concentration = 0.5 applies to the canonical ensemble only"),
    ({**SQUARE, "ensemble": "canonical", "concentration": 0.5, "dmu": 0.1}, "system.dmu = 0.1 applies to the semi_grand"),
    ({**SQUARE, "ensemble": "canonical", "concentration": 0.3}, r"system.train_size = \[4, 4\]: concentration 0.3 gives 4.8"),
    ({**SQUARE, "transfer_sizes": [[6, 8]]}, r"system.transfer_sizes\[0\] = \[6, 8\] does not repeat train_size"),
    ({**SQUARE, "temperatures": [2.0], "neural_temperatures": [2.5]}, r"system.neural_temperatures\[0\] = 2.5 is not on"),
    ({**SQUARE, "mcmc": {"temperatures": [2.0], "sweeps": 100, "burn_in": 10}}, "system.mcmc.sweeps = 100 with burn_in = 10 records 90"),
    ({**SQUARE, "mcmc": {"temperatures": [2.0], "move": "swap"}}, "system.mcmc.move = 'swap' does not sample the semi_grand"),
    ({**SQUARE, "h": 0.1, "mcmc": {"temperatures": [2.0], "move": "wolff"}}, "'wolff' needs a zero-field ferromagnetic"),
    ({"model": "sherrington_kirkpatrick", "train_size": [1]}, r"system.train_size = \[1\]: sherrington_kirkpatrick takes \[N\]"),
    ({"model": "sherrington_kirkpatrick", "lattice": "square", "train_size": [4, 4]}, "takes lattice None"),
    ({"model": "sherrington_kirkpatrick", "train_size": [9000]}, "may have at most 8192"),
    ({"model": "edwards_anderson", "lattice": "fcc", "train_size": [2, 2, 2]}, "takes lattice square, simple_cubic"),
    ({"model": "cluster_expansion", "lattice": "fcc", "train_size": [2, 2, 4]}, "system.alloy is missing"),
    ({"model": "cluster_expansion", "alloy": "cuau", "lattice": "square", "train_size": [2, 2]}, "takes lattice fcc"),
])
def test_bad_blocks_name_the_field(block, message):
    with pytest.raises(ConfigError, match=message):
        SystemConfig.from_dict(block)


def test_a_cluster_expansion_needs_its_file():
    with pytest.raises(ConfigError, match="alloy 'cuau': give its CE file"):
        build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "train_size": [2, 2, 4]})


def test_bad_temperatures():
    system = build_system({**SQUARE, "train_size": [2, 2]})
    for t in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="temperature must be positive"):
            system.beta(t)
    for b in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="beta must be finite and non-negative"):
            system.temperature(b)


def test_infinite_temperature_is_beta_zero():
    """Thermodynamic integration starts at T = inf, i.e. beta = 0, in every unit system."""
    spin = build_system({**SQUARE, "train_size": [2, 2]})
    assert spin.beta(math.inf) == 0.0 and spin.temperature(0.0) == math.inf
    assert spin.temperature(spin.beta(2.5)) == pytest.approx(2.5, rel=1e-15)


@pytest.fixture(scope="module")
def cuau_ce_file(tmp_path_factory):
    """A small CuAu cluster expansion (pairs to 6 Å, triplets to 4.5 Å) with fixed parameters."""
    space = ClusterSpace(bulk("Cu", "fcc", a=3.8), cutoffs=[6.0, 4.5], chemical_symbols=["Cu", "Au"])
    parameters = np.random.default_rng(0).normal(0.0, 0.02, len(space))
    return write_cluster_expansion(ClusterExpansion(space, parameters), tmp_path_factory.mktemp("ce") / "cuau.json")


def test_cluster_expansion_system_matches_icet(cuau_ce_file, tmp_path):
    block = {"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "train_size": [2, 2, 4],
             "ensemble": "canonical", "concentration": 0.5}
    path = tmp_path / "alloy_system.yaml"
    path.write_text(yaml.safe_dump(block))
    system = load_system(path, ce_file=cuau_ce_file)
    assert system.name == "alloy_system" and system.species == ["Cu", "Au"]
    assert system.lattice.lattice_constant == pytest.approx(3.8) and system.n_ones == 8 and system.energy_unit == "eV"
    np.testing.assert_allclose(system.beta(600.0), 1.0 / (K_B_EV * 600.0), rtol=1e-15)
    np.testing.assert_allclose(system.temperature(system.beta(600.0)), 600.0, rtol=1e-15)
    ce = read_cluster_expansion(cuau_ce_file)
    x = torch.randint(0, 2, (4, 16), generator=torch.Generator().manual_seed(1))
    expected = [ce.predict(system.lattice.to_atoms(row, system.species)) * 16 for row in x.numpy()]
    np.testing.assert_allclose(system.hamiltonian(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ConfigError, match=r"concentration 0.5 gives 0.5 species-1 sites of 1"):
        build_system(system.config, size=[1, 1, 1], ce_file=cuau_ce_file)


def test_disorder_samples_are_systems_of_their_own():
    block = {"model": "edwards_anderson", "lattice": "square", "coupling_seed": 4, "disorder_samples": 3,
             "train_size": [4, 4], "temperatures": [1.0]}
    members = SystemConfig.from_dict(block).disorder_members("glass")
    assert list(members) == ["glass_seed4", "glass_seed5", "glass_seed6"]
    assert [m.coupling_seed for m in members.values()] == [4, 5, 6]
    assert all(m.disorder_samples == 1 and m.disorder_members("x") == {"x": m} for m in members.values())
    couplings = [build_system(m).hamiltonian.couplings for m in members.values()]
    assert not torch.equal(couplings[0], couplings[1])
    single = SystemConfig.from_dict(dict(block, disorder_samples=1))
    assert single.disorder_members("glass") == {"glass": single} and single.spin_glass
