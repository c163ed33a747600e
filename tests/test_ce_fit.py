"""CE fitting routes (published, EMT, database), hull outputs and the `lattherm ce fit` CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from ase.calculators.emt import EMT
from ase.db import connect
from icet import ClusterExpansion
from typer.testing import CliRunner

from lattherm.ce.fit import au_fraction, emt_energies, enumerated_structures, fit_cluster_expansion
from lattherm.ce.hull import formation_energies
from lattherm.ce.published import published_cluster_expansion
from lattherm.cli import app


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
           [("ce", "model.ce"), ("metrics", "metrics.json"), ("gs", "ground_states.csv"), ("plot", "hull.png")]}
    result = CliRunner().invoke(app, ["ce", "fit", "--source", "published", "--max-atoms", "6",
                                      "--out-ce", str(out["ce"]), "--out-metrics", str(out["metrics"]),
                                      "--out-ground-states", str(out["gs"]), "--out-hull-plot", str(out["plot"])])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(ClusterExpansion.read(str(out["ce"])).parameters[2:],
                               published_cluster_expansion().parameters[2:], atol=1e-12)
    assert json.loads(out["metrics"].read_text())["n_structures"] == len(enumerated_structures(6))
    assert list(pd.read_csv(out["gs"])["x_au"]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert out["plot"].read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(app, ["ce", "fit", "--source", "nope", "--out-ce", "a.ce", "--out-metrics", "m.json",
                                   "--out-ground-states", "g.csv", "--out-hull-plot", "h.png"])
    assert bad.exit_code != 0 and "unknown source" in bad.output
