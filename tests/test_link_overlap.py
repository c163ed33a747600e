"""The energy / link-overlap identity of Gaussian glasses, [<E>] / N_b = -beta sigma^2 (1 - [<q_l>])
(Katzgraber, Palassini & Young 2001): exact on the disorder average of enumerated cells, where
+-J couplings break it; parallel tempering's <E> and <q_l> per sample against enumeration; the
check failing on runs too short to equilibrate; and its command, which refuses a +-J family."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lattherm.analysis.figures import TableError
from lattherm.analysis.spin_glass import MEAN, link_overlap_identity
from lattherm.cli import app, main
from lattherm.exact.enumeration import _moments, configurations, enumerate_energies
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.ising import EdwardsAnderson, SherringtonKirkpatrick, gaussian_bonds
from lattherm.lattices import make_lattice
from lattherm.mcmc.samplers import overlap_tempering, partner_link_overlap
from lattherm.observables import link_overlap, overlap
from lattherm.systems import build_system

BETAS = [0.5, 1.0, 2.0, 3.0]
SEEDS = range(200)


def test_link_overlap_against_explicit_bond_loops():
    """q_l over given bonds and over all pairs (SK) against loops; 1 for identical and for spin-flipped
    replicas; the SK form (N q^2 - 1) / (N - 1) equals the explicit sum over i < j."""
    gen = torch.Generator().manual_seed(0)
    x_a, x_b = torch.randint(2, (5, 6), generator=gen), torch.randint(2, (5, 6), generator=gen)
    bonds = torch.tensor([[0, 1], [1, 2], [2, 5], [3, 4], [0, 5]])
    s_a, s_b = (2 * x_a - 1).double(), (2 * x_b - 1).double()
    loop = [np.mean([s_a[r, i] * s_a[r, j] * s_b[r, i] * s_b[r, j] for i, j in bonds.tolist()]) for r in range(5)]
    np.testing.assert_allclose(link_overlap(x_a, x_b, bonds).numpy(), loop, atol=1e-15)
    pairs = torch.tensor([[i, j] for i in range(6) for j in range(i + 1, 6)])
    np.testing.assert_allclose(link_overlap(x_a, x_b).numpy(), link_overlap(x_a, x_b, pairs).numpy(), atol=1e-14)
    np.testing.assert_allclose(link_overlap(x_a, 1 - x_a, bonds).numpy(), 1.0)
    np.testing.assert_allclose(link_overlap(x_a, x_a).numpy(), 1.0)
    x = torch.stack([x_a[0], x_b[0], x_a[1], x_a[1]])  # rows 2r, 2r+1 are replicas of each other
    np.testing.assert_allclose(partner_link_overlap(bonds)(x).numpy(),
                               link_overlap(x, x[[1, 0, 3, 2]], bonds).numpy(), atol=0)
    np.testing.assert_allclose(partner_link_overlap(bonds)(x)[2:].numpy(), 1.0)
    assert not torch.allclose(overlap(x_a, x_b), link_overlap(x_a, x_b, bonds))


def test_gaussian_bonds_match_the_drawn_couplings():
    """sigma^2 and N_b of EA (16x16, 512 bonds) and SK (N = 64, 2016 pairs) against the couplings
    actually drawn (sample variance within 4 of its standard errors); +-J, a field: none."""
    ea = EdwardsAnderson(make_lattice("square", (16, 16)), seed=3, couplings="gaussian")
    sk = SherringtonKirkpatrick(64, seed=3)
    ea_bonds, sk_bonds = gaussian_bonds(ea), gaussian_bonds(sk)
    assert (ea_bonds.variance, ea_bonds.n_bonds) == (1.0, 512) and torch.equal(ea_bonds.bonds, ea.bonds)
    assert sk_bonds.variance == pytest.approx(1 / 64, rel=1e-15) and sk_bonds.n_bonds == 64 * 63 // 2
    assert sk_bonds.bonds is None
    upper = sk.coupling_matrix[np.triu_indices(64, 1)].numpy()
    for couplings, bonds in ((ea.couplings.numpy(), ea_bonds), (upper, sk_bonds)):
        assert len(couplings) == bonds.n_bonds
        assert abs(np.var(couplings) - bonds.variance) < 4 * bonds.variance * np.sqrt(2 / bonds.n_bonds)
    assert gaussian_bonds(EdwardsAnderson(make_lattice("square", (4, 4)), seed=3)) is None  # pm_j
    assert gaussian_bonds(SherringtonKirkpatrick(8, seed=3, couplings="pm_j")) is None
    assert gaussian_bonds(SemiGrand(sk, 0.3)) is None


def _exact_terms(hamiltonian, bonds: np.ndarray, variance: float, name: str, size: str) -> pd.DataFrame:
    """A parallel-tempering summary's identity columns, computed exactly by enumeration:
    <E> / N_b, <q_l> = mean_b <s_i s_j>^2 and -beta sigma^2 (1 - <q_l>), errors 0."""
    energies, _ = enumerate_energies(hamiltonian)
    s = 2.0 * configurations(hamiltonian.n_sites, 0, len(energies)).double().numpy() - 1.0
    products = s[:, bonds[:, 0]] * s[:, bonds[:, 1]]
    rows = []
    for beta in BETAS:
        p = _moments(energies, beta)[3]
        q_l = float(np.mean((p @ products) ** 2))
        rows.append({"system": name, "size": size, "temperature": 1 / beta, "beta": beta, "energy_per_bond": p @ energies / len(bonds),
                     "energy_per_bond_err": 0.0, "link_overlap": q_l, "link_overlap_err": 0.0,
                     "link_energy_per_bond": -beta * variance * (1 - q_l), "link_energy_per_bond_err": 0.0})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def exact_families():
    """Per model, the exact identity terms of 200 coupling draws: Gaussian EA 3x3 (18 bonds), SK
    N = 8 (28 pairs), and +-J EA 3x3 taken with the sigma^2 = 1 that J^2 has."""
    lattice = make_lattice("square", (3, 3))
    pairs = np.array([[i, j] for i in range(8) for j in range(i + 1, 8)])
    families = {"ea_gaussian": [], "sk": [], "ea_pm_j": []}
    for seed in SEEDS:
        ea = EdwardsAnderson(lattice, seed=seed, couplings="gaussian")
        families["ea_gaussian"].append(_exact_terms(ea, ea.bonds.numpy(), 1.0, f"ea_gaussian_seed{seed}", "3x3"))
        families["sk"].append(_exact_terms(SherringtonKirkpatrick(8, seed=seed), pairs, 1 / 8, f"sk_seed{seed}", "8"))
        pm = EdwardsAnderson(lattice, seed=seed)
        families["ea_pm_j"].append(_exact_terms(pm, pm.bonds.numpy(), 1.0, f"ea_pm_j_seed{seed}", "3x3"))
    return {name: link_overlap_identity(tables, name) for name, tables in families.items()}


@pytest.mark.parametrize("family", ["ea_gaussian", "sk"])
def test_identity_holds_exactly_on_the_disorder_average(exact_families, family):
    """Exact <E> and <q_l> of 200 Gaussian samples: the two sides agree within the sample-to-sample
    error at every beta, though single samples miss by far more than that error."""
    table = exact_families[family]
    means = table[table["sample"] == MEAN]
    assert len(means) == len(BETAS) and set(means.n_samples) == {len(SEEDS)} and means["size"].nunique() == 1
    assert set(means.check) == {"pass"} and (means.sigma.abs() < 3).all() and (means.p_value > 0.05).all(), means
    per_sample = table[table["sample"] != MEAN]
    spread = per_sample.groupby("temperature").difference.apply(lambda d: d.abs().max())
    assert (spread > 10 * means.set_index("temperature").difference_err).all()


def test_identity_fails_for_pm_j_couplings(exact_families):
    """+-J couplings at their sigma^2 = J^2 = 1: the check fails on the same 200 samples (5 to 8
    sigma; at beta = 2, where the two sides cross, 3 sigma only, so not asserted)."""
    means = exact_families["ea_pm_j"].set_index("beta")
    means = means[means["sample"] == MEAN]
    assert (means.loc[[0.5, 1.0, 3.0]].check == "fail").all() and (means.loc[[0.5, 1.0, 3.0]].sigma.abs() > 5).all()


@pytest.fixture(scope="module")
def tempering_samples():
    """Parallel tempering of three Gaussian EA 3x3 samples, down to T = 1/3."""
    summaries, exact = [], []
    for seed in range(3):
        block = {"model": "edwards_anderson", "lattice": "square", "couplings": "gaussian", "coupling_seed": seed,
                 "train_size": [3, 3], "mcmc": {"temperatures": [1 / b for b in BETAS], "chains": 8, "sweeps": 1200,
                                                "burn_in": 200}}
        system = build_system(block, name=f"g_seed{seed}")
        summaries.append(overlap_tempering(system, seed=seed)[1])
        exact.append(_exact_terms(system.hamiltonian, system.hamiltonian.bonds.numpy(), 1.0, system.name, "3x3"))
    return summaries, exact


def test_tempering_energy_and_link_overlap_match_enumeration(tempering_samples):
    """Per sample and temperature, parallel tempering's <E> / N_b and <q_l> within 4 sigma of the
    enumeration (and the link side of the identity as -beta (1 - <q_l>))."""
    for summary, exact in zip(*tempering_samples):
        assert len(summary) == len(exact)
        for (_, got), (_, want) in zip(summary.iterrows(), exact.iterrows()):
            assert got.beta == pytest.approx(want.beta, rel=1e-12)
            assert abs(got.energy_per_bond - want.energy_per_bond) < 4 * got.energy_per_bond_err, (got, want)
            assert abs(got.link_overlap - want.link_overlap) < 4 * got.link_overlap_err, (got, want)
            assert got.link_energy_per_bond == pytest.approx(-got.beta * (1 - got.link_overlap), rel=1e-12)
            assert (got.coupling_variance, got.n_bonds) == (1.0, 18)


def test_check_fails_on_runs_too_short_to_equilibrate(short_gaussian_tempering):
    """Eight Gaussian EA 16x16 samples, 128 sweeps from random starts counted from the first: the
    energy side lies above the link side (energy too high, link overlap too low) by many
    sample-to-sample sigmas at T = 0.5 and 0.25 (measured: 26 and 45); at T = 3, equilibrated
    within those sweeps, the check passes (measured: 1.4 sigma)."""
    table = link_overlap_identity(short_gaussian_tempering, "short")
    means = table[table["sample"] == MEAN]
    cold = means[means.temperature < 1]
    assert (cold.check == "fail").all() and (cold.sigma > 10).all() and (cold.difference > 0.2).all(), cold
    assert (cold.p_value < 1e-6).all()
    assert means[means.temperature == 3.0].check.tolist() == ["pass"], means


def test_identity_command_and_its_refusals(tmp_path, tempering_samples, capsys):
    """`analysis disorder-average --out-identity` writes the table the function computes; a +-J
    family's summaries, summaries without --out-identity and no summaries each give one line."""
    paths = []
    for i, summary in enumerate(tempering_samples[0]):
        paths.append(str(tmp_path / f"g{i}.csv"))
        summary.to_csv(paths[-1], index=False)
    runner = CliRunner()
    out = tmp_path / "identity.csv"
    result = runner.invoke(app, ["analysis", "disorder-average", *paths, "--family", "g", "--out-identity", str(out)])
    assert result.exit_code == 0, result.output
    expected = link_overlap_identity([pd.read_csv(p) for p in paths], "g", paths)
    pd.testing.assert_frame_equal(pd.read_csv(out), expected, check_dtype=False)
    assert set(expected[expected["sample"] == MEAN].check) <= {"pass", "fail"}

    block = {"model": "edwards_anderson", "lattice": "square", "couplings": "pm_j", "train_size": [3, 3],
             "mcmc": {"temperatures": [2.0, 1.0], "chains": 4, "sweeps": 200, "burn_in": 50}}
    (tmp_path / "pm.json").write_text(json.dumps(block))
    result = runner.invoke(app, ["mcmc", "tempering", "--system", str(tmp_path / "pm.json"), "--out",
                                 str(tmp_path / "pm_pt.csv"), "--out-summary", str(tmp_path / "pm_summary.csv")])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "pm_summary.csv").link_energy_per_bond.isna().all()
    refusals = {
        "needs Gaussian couplings": [str(tmp_path / "pm_summary.csv"), "--out-identity", str(tmp_path / "x.csv")],
        "goes with --out-identity": [*paths, "--out-thermodynamics", str(tmp_path / "t.csv"),
                                     "--out-overlap", str(tmp_path / "o.csv")],
        "summaries .* none given": [str(tmp_path / "pm_pt.csv"), "--out-identity", str(tmp_path / "x.csv")],
    }
    for message, args in refusals.items():
        with pytest.raises(SystemExit) as exit_info:
            main(["analysis", "disorder-average", *args, "--family", "g"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert exit_info.value.code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
        assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(TableError, match="none given"):
        link_overlap_identity([], "g")
