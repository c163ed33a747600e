"""CE fitting routes (published, EMT, database), hull outputs and the `lattherm ce fit` CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from icet import ClusterExpansion, ClusterSpace
from typer.testing import CliRunner

from lattherm.ce.fit import (au_fraction, concentration, emt_energies, enumerated_structures,
                             fit_cluster_expansion, primitive_structure)
from lattherm.ce.hull import formation_energies
from lattherm.ce.published import published_cluster_expansion
from lattherm.ce.storage import read_cluster_expansion
from lattherm.cli import app
from lattherm.systems import build_system


def test_published_route_recovers_the_published_parameters():
    """Mixing energies differ from the model by a term linear in x (only c0, c1 change)."""
    result = fit_cluster_expansion("published", max_atoms=6)
    np.testing.assert_allclose(result.ce.parameters[2:], published_cluster_expansion().parameters[2:], atol=1e-12)
    assert result.metrics["cv_rmse_mev_per_atom"] < 1e-9 and result.metrics["n_nonzero_parameters"] == 11
    np.testing.assert_allclose(1e3 * result.ground_states["formation_energy_ev_per_atom"],
                               [0, -34.1672, -36.1825, -18.7544, 0], atol=1e-3)


@pytest.fixture(scope="module")
def emt_fit():
    return fit_cluster_expansion("emt", relax=False, max_atoms=6)


def test_relaxed_emt_mixing_energies_match_science_numbers():
    """science.md: relaxed EMT L1_0 -7.9, L1_2 Cu3Au -10.2, CuAu3 +7.2 meV/atom."""
    from ase.build import bulk

    structures = [bulk(s, "fcc", a=3.8) for s in ("Cu", "Au")]
    for symbols in (["Au", "Cu", "Cu", "Au"], ["Au", "Cu", "Cu", "Cu"], ["Cu", "Au", "Au", "Au"]):
        atoms = bulk("Cu", "fcc", a=3.8, cubic=True)
        atoms.set_chemical_symbols(symbols)
        structures.append(atoms)
    x = np.array([au_fraction(s) for s in structures])
    mixing = 1e3 * formation_energies(x, emt_energies(structures, relax=True))
    np.testing.assert_allclose(mixing[2:], [-7.9, -10.2, 7.2], atol=0.06)


def test_ideal_emt_fit_has_l12_cu3au_on_its_hull(emt_fit):
    gs = emt_fit.ground_states
    l12 = gs[np.isclose(gs["x_au"], 0.25)]
    assert len(l12) == 1 and l12["formation_energy_ev_per_atom"].iloc[0] < 0
    assert emt_fit.metrics["n_structures"] == len(enumerated_structures(6))
    table = emt_fit.table  # the reported train RMSE is that of the table's CE vs EMT energies
    assert emt_fit.metrics["train_rmse_mev_per_atom"] > 0 and len(table) == emt_fit.metrics["n_structures"]


def test_database_route_round_trip(tmp_path):
    path = tmp_path / "structures.db"
    structures = enumerated_structures(5)
    with connect(str(path)) as db:
        for atoms in structures:
            atoms = atoms.copy()
            atoms.calc = EMT()
            atoms.get_potential_energy()
            db.write(atoms)
    result = fit_cluster_expansion("database", database=path)
    x = np.array([au_fraction(s) for s in structures])
    energy = []
    for s in structures:
        s = s.copy()
        s.calc = EMT()
        energy.append(s.get_potential_energy() / len(s))
    mixing = formation_energies(x, np.array(energy))
    predicted = np.array([result.ce.predict(s) for s in structures])
    rmse = np.sqrt(np.mean((predicted - mixing) ** 2))
    assert result.metrics["n_structures"] == len(structures)
    assert rmse == pytest.approx(result.metrics["train_rmse_mev_per_atom"] / 1e3, rel=1e-9)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown energy source"):
        fit_cluster_expansion("dft")
    with pytest.raises(ValueError, match="needs a database path"):
        fit_cluster_expansion("database")
    with pytest.raises(FileNotFoundError, match="not found"):
        fit_cluster_expansion("database", database=tmp_path / "missing.db")
    path = tmp_path / "no_energy.db"
    with connect(str(path)) as db:
        db.write(enumerated_structures(1)[0])
    with pytest.raises(ValueError, match="has no energy"):
        fit_cluster_expansion("database", database=path)
    with pytest.raises(ValueError, match="max_atoms"):
        fit_cluster_expansion("emt", max_atoms=0)


def test_cli_fit_writes_all_outputs(tmp_path):
    out = {k: tmp_path / name for k, name in
           [("ce", "model.json"), ("metrics", "metrics.json"), ("gs", "ground_states.csv"), ("plot", "hull.png")]}
    alloy = tmp_path / "cuau.yaml"
    alloy.write_text("source: published\nmax_atoms: 6\n")
    result = CliRunner().invoke(app, ["ce", "fit", "--alloy", str(alloy),
                                      "--out-ce", str(out["ce"]), "--out-metrics", str(out["metrics"]),
                                      "--out-ground-states", str(out["gs"]), "--out-hull-plot", str(out["plot"])])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_cluster_expansion(out["ce"]).parameters[2:],
                               published_cluster_expansion().parameters[2:], atol=1e-12)
    assert json.loads(out["metrics"].read_text())["n_structures"] == len(enumerated_structures(6))
    assert list(pd.read_csv(out["gs"])["x_au"]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert out["plot"].read_bytes()[:4] == b"\x89PNG"
    alloy.write_text("source: nope\n")
    bad = CliRunner().invoke(app, ["ce", "fit", "--alloy", str(alloy), "--out-ce", "a.json", "--out-metrics", "m.json",
                                   "--out-ground-states", "g.csv", "--out-hull-plot", "h.png"])
    assert bad.exit_code != 0 and "source: 'nope' is not one of" in str(bad.exception)


# -- other alloys from a user's database -------------------------------------------------------
# (species, lattice, a in Å, cutoffs in Å): 8 and 6 parameters, determined by the 29 structures of
# up to 4 atoms.
FECR_BCC = (("Fe", "Cr"), "bcc", 2.87, [5.0, 3.0])
AGPD_FCC = (("Ag", "Pd"), "fcc", 4.0, [5.0, 3.0])


def reference_ce(species, lattice, a, cutoffs):
    """A known CE with random parameters, standing in for DFT (total energies in eV/atom)."""
    cs = ClusterSpace(primitive_structure(species, lattice, a), cutoffs=cutoffs, chemical_symbols=list(species))
    parameters = np.random.default_rng(7).normal(0.0, 0.03, len(cs))
    parameters[0] = -5.0
    return ClusterExpansion(cs, parameters)


def reference_mixing(ce, species, lattice, a, structures):
    """Exact mixing energies per atom of the reference CE, relative to its pure elements."""
    pure = [ce.predict(bulk(symbol, lattice, a=a)) for symbol in species]
    x = np.array([concentration(s, species) for s in structures])
    return np.array([ce.predict(s) for s in structures]) - (1 - x) * pure[0] - x * pure[1]


def with_energy(atoms, energy):
    atoms.calc = SinglePointCalculator(atoms, energy=energy)
    return atoms


def write_database(path, structures, ce, strain=1.02, rattle=0.01):
    """Rows as DFT would give them: the cell expanded by ``strain``, atoms displaced by up to
    ``rattle`` Å, total energies from the reference CE of the ideal structure."""
    with connect(str(path)) as db:
        for k, ideal in enumerate(structures):
            atoms = ideal.copy()
            atoms.set_cell(atoms.cell * strain, scale_atoms=True)
            atoms.rattle(rattle, seed=k)
            db.write(with_energy(atoms, len(atoms) * ce.predict(ideal)))


@pytest.mark.parametrize("alloy", [FECR_BCC, AGPD_FCC], ids=["FeCr-bcc", "AgPd-fcc"])
def test_database_route_recovers_a_known_ce_of_another_alloy(tmp_path, alloy):
    """Strained, rattled structures of up to 4 atoms determine the reference CE exactly (up to
    the linear term in x that mixing energies remove): held-out 5-6 atom structures agree."""
    species, lattice, a, cutoffs = alloy
    reference = reference_ce(species, lattice, a, cutoffs)
    path = tmp_path / "dft.db"
    training = enumerated_structures(4, species, lattice, a)
    write_database(path, training, reference)
    result = fit_cluster_expansion("database", database=path, cutoffs=cutoffs, species=species,
                                   lattice=lattice, a=a)
    held_out = enumerated_structures(6, species, lattice, a)[len(training):]
    assert len(training) == 29 and len(held_out) == 108
    predicted = np.array([result.ce.predict(s) for s in held_out])
    np.testing.assert_allclose(predicted, reference_mixing(reference, species, lattice, a, held_out), atol=1e-8)
    np.testing.assert_allclose(result.ce.parameters[2:], reference.parameters[2:], atol=1e-10)
    assert result.metrics["n_parameters"] == (8 if lattice == "bcc" else 6)
    assert result.metrics["cv_rmse_mev_per_atom"] < 1e-8
    assert (result.metrics["species"], result.metrics["lattice"]) == (list(species), lattice)
    # The hull's pure ends sit at zero mixing energy and x counts the second species.
    gs = result.ground_states
    assert gs["x_au"].iloc[0] == 0.0 and gs["x_au"].iloc[-1] == 1.0
    np.testing.assert_allclose(gs["formation_energy_ev_per_atom"].iloc[[0, -1]], 0.0, atol=1e-12)


def test_database_route_rejects_rows_that_do_not_fit(tmp_path):
    species, lattice, a, cutoffs = FECR_BCC
    reference = reference_ce(species, lattice, a, cutoffs)
    training = enumerated_structures(4, species, lattice, a)

    def fit(path, **kwargs):
        return fit_cluster_expansion("database", database=path, cutoffs=cutoffs, **kwargs)

    path = tmp_path / "foreign.db"
    write_database(path, training, reference)
    with connect(str(path)) as db:
        row = db.write(with_energy(bulk("Ni", "bcc", a=a), -4.0))
    with pytest.raises(ValueError, match=rf"row {row} \(Ni\) has species \['Ni'\] outside \['Fe', 'Cr'\]"):
        fit(path, species=species, lattice=lattice, a=a)

    # a BCC structure in an FCC fit maps onto FCC only along the Bain path: rejected
    path = tmp_path / "bcc_in_fcc.db"
    fcc_pure = [bulk(symbol, "fcc", a=3.6) for symbol in species]
    with connect(str(path)) as db:
        for atoms in fcc_pure:
            db.write(with_energy(atoms, -4.0))
        row = db.write(with_energy(bulk("Fe", "bcc", a=a, cubic=True), -8.0))
    with pytest.raises(ValueError, match=rf"row {row} \(Fe2\) is not a supercell of the fcc lattice.*anisotropic"):
        fit(path, species=species, lattice="fcc", a=3.6)
    # and an FCC structure in a BCC fit has no matching supercell at all
    path = tmp_path / "fcc_in_bcc.db"
    write_database(path, training, reference)
    with connect(str(path)) as db:
        row = db.write(with_energy(bulk("Cr", "fcc", a=3.6, cubic=True), -16.0))
    with pytest.raises(ValueError, match=rf"row {row} \(Cr4\) is not a supercell of the bcc lattice"):
        fit(path, species=species, lattice=lattice, a=a)

    path = tmp_path / "no_pure_cr.db"
    write_database(path, [s for s in training if concentration(s, species) < 1], reference)
    with pytest.raises(ValueError, match="no pure Cr structure"):
        fit(path, species=species, lattice=lattice, a=a)


def test_alloy_errors():
    with pytest.raises(ValueError, match="'published' is the CuAu model on FCC"):
        fit_cluster_expansion("published", species=("Ag", "Pd"), max_atoms=2)
    with pytest.raises(ValueError, match="'published' is the CuAu model on FCC"):
        fit_cluster_expansion("published", lattice="bcc", max_atoms=2)
    with pytest.raises(ValueError, match=r"EMT has no parameters for \['Fe'\]"):
        fit_cluster_expansion("emt", species=("Fe", "Cu"), max_atoms=2)
    with pytest.raises(ValueError, match="'emt' fits FCC alloys only"):
        fit_cluster_expansion("emt", species=("Ag", "Pd"), lattice="bcc", a=3.3, max_atoms=2)
    with pytest.raises(ValueError, match="unknown CE lattice 'hcp'"):
        fit_cluster_expansion("emt", lattice="hcp")
    with pytest.raises(ValueError, match="two distinct elements"):
        fit_cluster_expansion("emt", species=("Cu", "Cu"))
    with pytest.raises(ValueError, match=r"\['Xx'\] are not chemical elements"):
        fit_cluster_expansion("emt", species=("Cu", "Xx"))
    with pytest.raises(ValueError, match="lattice constant must be a positive"):
        fit_cluster_expansion("emt", a=0.0)
    with pytest.raises(ValueError, match="cutoffs must be positive"):
        fit_cluster_expansion("emt", cutoffs=[6.0, -1.0])


def test_ag_pd_emt_fit_on_fcc():
    """EMT route for another pair: the training table holds EMT's mixing energies of Ag-Pd."""
    result = fit_cluster_expansion("emt", species=("Ag", "Pd"), a=4.0, max_atoms=4, cutoffs=[5.0, 3.0])
    structures = enumerated_structures(4, ("Ag", "Pd"), "fcc", 4.0)
    x = np.array([concentration(s, ("Ag", "Pd")) for s in structures])
    expected = formation_energies(x, emt_energies(structures, species=("Ag", "Pd"), a=4.0))
    np.testing.assert_allclose(result.table["reference_mixing_energy_ev_per_atom"], expected, atol=1e-12)
    np.testing.assert_allclose(result.table["x_au"], x)


def test_cli_fit_bcc_database(tmp_path):
    species, lattice, a, cutoffs = FECR_BCC
    reference = reference_ce(species, lattice, a, cutoffs)
    db = tmp_path / "fecr.db"
    write_database(db, enumerated_structures(4, species, lattice, a), reference)
    out = {k: tmp_path / name for k, name in
           [("ce", "fecr.json"), ("metrics", "metrics.json"), ("gs", "ground_states.csv"), ("plot", "hull.png")]}
    outputs = ["--out-ce", str(out["ce"]), "--out-metrics", str(out["metrics"]),
               "--out-ground-states", str(out["gs"]), "--out-hull-plot", str(out["plot"])]
    alloy = tmp_path / "fecr.yaml"
    block = {"source": "database", "database": str(db), "species": ["Fe", "Cr"], "lattice": "bcc",
             "lattice_constant": 2.87, "cutoffs": [5.0, 3.0]}
    alloy.write_text(yaml.safe_dump(block))
    result = CliRunner().invoke(app, ["ce", "fit", "--alloy", str(alloy), *outputs])
    assert result.exit_code == 0, result.output
    held_out = enumerated_structures(5, species, lattice, a)[29:]
    fitted = read_cluster_expansion(out["ce"])
    np.testing.assert_allclose([fitted.predict(s) for s in held_out],
                               reference_mixing(reference, species, lattice, a, held_out), atol=1e-8)
    metrics = json.loads(out["metrics"].read_text())
    assert (metrics["species"], metrics["lattice"], metrics["cutoffs"]) == (["Fe", "Cr"], "bcc", [5.0, 3.0])
    # The written CE drives a BCC system spec: its Hamiltonian is icet's prediction times N.
    system = build_system({"model": "cluster_expansion", "alloy": "fecr", "lattice": "bcc_cubic",
                           "train_size": [2, 2, 2]}, ce_file=out["ce"])
    assert system.species == list(species) and system.lattice.lattice_constant == pytest.approx(a)
    x = np.random.default_rng(4).integers(0, 2, (3, system.n_sites))
    expected = [system.n_sites * fitted.predict(system.lattice.to_atoms(xi, species)) for xi in x]
    np.testing.assert_allclose(system.hamiltonian.energy(torch.as_tensor(x)).numpy(), expected, atol=1e-9)
    for key, value, message in [("species", ["Fe"], "species: ['Fe'] is too short"),
                                ("species", ["Fe", "Xx"], "not chemical elements"),
                                ("lattice", "hcp", "lattice: 'hcp' is not one of"),
                                ("cutoffs", [5.0, "x"], "cutoffs[1]: 'x' is not of type 'number'")]:
        alloy.write_text(yaml.safe_dump(dict(block, **{key: value})))
        bad = CliRunner().invoke(app, ["ce", "fit", "--alloy", str(alloy), *outputs])
        assert bad.exit_code != 0 and message in str(bad.exception), bad.exception
