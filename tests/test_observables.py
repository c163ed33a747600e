"""The one observables module: values on perfect ordered and disordered FCC configurations,
Warren-Cowley against mchammer's ShortRangeOrderObserver, overlap, heat capacity, and one set of
column names for the torch MCMC, mchammer and neural tables."""

import warnings

import numpy as np
import pytest
import torch
from ase.lattice.compounds import L1_0, L1_2

from lattherm.lattices import make_lattice
from lattherm.observables import (
    abs_magnetization, composition, concentration_waves, heat_capacity, magnetization, order_l10, order_l12,
    order_parameter, overlap, standard_observables, sublattice_concentrations, warren_cowley,
)

A = 3.8
CELLS = [("fcc_cubic", (2, 2, 2)), ("fcc", (2, 2, 4))]
FCC_COLUMNS = ["magnetization", "abs_magnetization", "composition", "c_sub0", "c_sub1", "c_sub2", "c_sub3",
               "order_parameter", "order_l12", "order_l10", "sro_1"]


def perfect_structures(lattice):
    """name -> (B, N) configurations of every variant: L1_2 A3B and AB3 (4 minority
    sublattices each), L1_0 (3 layering directions, either species on either pair)."""
    sub = torch.as_tensor(lattice.fcc_sublattices())
    a3b = torch.stack([(sub == k).long() for k in range(4)])
    l10 = torch.stack([torch.isin(sub, torch.tensor(pair)).long() for pair in [(0, 1), (0, 2), (0, 3)]])
    return {"L1_2 x=1/4": a3b, "L1_2 x=3/4": 1 - a3b, "L1_0": torch.cat([l10, 1 - l10])}


@pytest.mark.parametrize("kind, size", CELLS)
def test_perfect_ordered_states(kind, size):
    lattice = make_lattice(kind, size, a=A)
    obs = standard_observables(lattice)
    assert list(obs) == FCC_COLUMNS
    expected = {  # order_parameter, order_l12, order_l10, composition, magnetization, sro_1
        "L1_2 x=1/4": (1.0, 1.0, 0.0, 0.25, -0.5, -1 / 3),
        "L1_2 x=3/4": (1.0, 1.0, 0.0, 0.75, 0.5, -1 / 3),
        "L1_0": (1.0, 0.0, 1.0, 0.5, 0.0, -1 / 3),
    }
    for name, x in perfect_structures(lattice).items():
        values = {col: fn(x) for col, fn in obs.items()}
        assert all(v.dtype == torch.float64 and v.shape == (len(x),) for v in values.values())
        eta, l12, l10, c, m, sro = expected[name]
        for col, want in [("order_parameter", eta), ("order_l12", l12), ("order_l10", l10), ("composition", c),
                          ("magnetization", m), ("abs_magnetization", abs(m)), ("sro_1", sro)]:
            np.testing.assert_allclose(values[col].numpy(), want, atol=1e-12, err_msg=f"{name} {col}")
        c_sub = torch.stack([values[f"c_sub{k}"] for k in range(4)], dim=1)
        assert set(c_sub.unique().tolist()) <= {0.0, 1.0}  # every sublattice pure
        np.testing.assert_allclose(c_sub.mean(dim=1).numpy(), c, atol=1e-12)


@pytest.mark.parametrize("kind, size", CELLS)
def test_disordered_states_give_zero(kind, size):
    lattice = make_lattice(kind, size, a=A)
    obs = standard_observables(lattice)
    sub = lattice.fcc_sublattices()
    # every sublattice at the same concentration: half of each sublattice's sites, or none, or all
    half = np.zeros(lattice.n_sites, dtype=np.int64)
    for k in range(4):
        sites = np.nonzero(sub == k)[0]
        half[sites[: len(sites) // 2]] = 1
    x = torch.as_tensor(np.stack([half, np.zeros_like(half), np.ones_like(half)]))
    for col in ("order_parameter", "order_l12", "order_l10"):
        np.testing.assert_allclose(obs[col](x).numpy(), 0.0, atol=1e-12, err_msg=col)
    # Warren-Cowley is undefined without both species
    sro = obs["sro_1"](x)
    assert torch.isfinite(sro[0]) and torch.isnan(sro[1:]).all()


def test_order_parameters_are_bounded_and_symmetric():
    gen = torch.Generator().manual_seed(0)
    c_sub = torch.rand(20000, 4, generator=gen, dtype=torch.float64)
    for fn in (order_parameter, order_l12, order_l10):
        values = fn(c_sub)
        assert values.min() >= 0 and values.max() <= 1 + 1e-12, fn.__name__
        # species exchange c -> 1 - c and permutations of the sublattices leave it unchanged
        np.testing.assert_allclose(fn(1 - c_sub).numpy(), values.numpy(), atol=1e-12)
        np.testing.assert_allclose(fn(c_sub[:, [2, 0, 3, 1]]).numpy(), values.numpy(), atol=1e-12)
    # c_k = c + sum_i eta_i p_i(k): the waves and the mean rebuild the concentrations
    waves = concentration_waves(c_sub)
    signs = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    np.testing.assert_allclose((c_sub.mean(1, keepdim=True) + waves @ signs.T).numpy(), c_sub.numpy(), atol=1e-12)
    # partial order: L1_2 (c + 3t, c - t, c - t, c - t) gives 4t, L1_0 (c + t, c + t, c - t, c - t) gives 2t
    t = 0.05
    assert order_l12(torch.tensor([[0.25 + 3 * t, 0.25 - t, 0.25 - t, 0.25 - t]])).item() == pytest.approx(4 * t)
    assert order_l10(torch.tensor([[0.5 + t, 0.5 + t, 0.5 - t, 0.5 - t]])).item() == pytest.approx(2 * t)


def test_ase_prototypes_map_onto_the_perfect_values():
    lattice = make_lattice("fcc_cubic", (2, 2, 2), a=A)
    obs = standard_observables(lattice)
    cases = [(L1_2(symbol=("Au", "Cu"), latticeconstant=A, size=(2, 2, 2)), 0.25, 1.0, 0.0),   # Cu3Au
             (L1_2(symbol=("Cu", "Au"), latticeconstant=A, size=(2, 2, 2)), 0.75, 1.0, 0.0),   # CuAu3
             (L1_0(symbol=("Cu", "Au"), latticeconstant=(A, A), size=(2, 2, 2)), 0.5, 0.0, 1.0)]  # CuAu
    for atoms, x_au, l12, l10 in cases:
        x = torch.as_tensor(lattice.from_atoms(atoms, ["Cu", "Au"]))[None]
        assert obs["composition"](x).item() == x_au
        assert obs["order_parameter"](x).item() == pytest.approx(1.0)
        assert obs["order_l12"](x).item() == pytest.approx(l12, abs=1e-12)
        assert obs["order_l10"](x).item() == pytest.approx(l10, abs=1e-12)


def test_warren_cowley_matches_mchammer():
    from mchammer.observers import ShortRangeOrderObserver

    from lattherm.ce.published import published_cluster_expansion

    lattice = make_lattice("fcc_cubic", (2, 2, 2), a=A)
    species = ["Cu", "Au"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # icet: the 32-site cell self-interacts for larger radii
        observer = ShortRangeOrderObserver(published_cluster_expansion().get_cluster_space_copy(),
                                           lattice.to_atoms(np.zeros(lattice.n_sites, int), species),
                                           radius=1.01 * lattice.shell_distances(1)[0])
    rng = np.random.default_rng(3)
    canonical = (rng.random((6, lattice.n_sites)).argsort(axis=1) < 16).astype(np.int64)
    grand = (rng.random((6, lattice.n_sites)) < rng.uniform(0.1, 0.9, (6, 1))).astype(np.int64)
    ordered = torch.cat(list(perfect_structures(lattice).values())).numpy()
    x = np.concatenate([canonical, grand, ordered])
    reference = np.array([observer.get_observable(lattice.to_atoms(row, species))["sro_Au_Cu_1"] for row in x])
    ours = standard_observables(lattice)["sro_1"](torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
    assert np.all(reference[-len(ordered):] == pytest.approx(-1 / 3))  # sign: unlike pairs favoured < 0


def test_warren_cowley_is_batched_and_nan_without_a_species():
    lattice = make_lattice("fcc_cubic", (2, 2, 2), a=A)
    pairs = lattice.neighbour_pairs(1)
    x = torch.randint(0, 2, (5, lattice.n_sites), generator=torch.Generator().manual_seed(1))
    batch = warren_cowley(x, pairs)
    single = torch.stack([warren_cowley(row, pairs)[0] for row in x])
    np.testing.assert_allclose(batch.numpy(), single.numpy(), atol=1e-15)
    # alpha = 1 - p_AB / (2 c (1 - c)) from bond counts
    s = 2 * x.double() - 1
    unlike = (s[:, pairs[:, 0]] != s[:, pairs[:, 1]]).double().mean(1)
    c = x.double().mean(1)
    np.testing.assert_allclose(batch.numpy(), (1 - unlike / (2 * c * (1 - c))).numpy(), atol=1e-12)
    assert torch.isnan(warren_cowley(torch.ones(2, lattice.n_sites, dtype=torch.long), pairs)).all()


def test_site_averages_and_overlap():
    x = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0]])
    assert magnetization(x).tolist() == [0.5, -1.0] and abs_magnetization(x).tolist() == [0.5, 1.0]
    assert composition(x).tolist() == [0.75, 0.0] and composition(x).dtype == torch.float64
    assert overlap(x, x).tolist() == [1.0, 1.0] and overlap(x, 1 - x).tolist() == [-1.0, -1.0]
    assert overlap(x, torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0]])).tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match="same shape"):
        overlap(x, x[:, :2])
    sub = np.array([0, 0, 1, 1])
    assert sublattice_concentrations(x, sub).tolist() == [[1.0, 0.5], [0.0, 0.0]]


def test_heat_capacity_formula():
    energy = np.array([1.0, 2.0, 4.0, 5.0])
    assert heat_capacity(energy, 0.5) == pytest.approx(0.25 * 2.5)
    assert heat_capacity(energy, 0.5, boltzmann_constant=2.0) == pytest.approx(2 * 0.25 * 2.5)


def test_one_set_of_columns_for_every_table():
    lattice = make_lattice("fcc", (2, 2, 4), a=A)
    assert list(standard_observables(lattice)) == FCC_COLUMNS
    assert list(standard_observables(make_lattice("square", 4))) == ["magnetization", "abs_magnetization",
                                                                     "composition"]
    assert list(standard_observables(None)) == ["magnetization", "abs_magnetization", "composition"]
    assert list(standard_observables(make_lattice("bcc_cubic", 2, a=2.87))) == [
        "magnetization", "abs_magnetization", "composition", "sro_1"]
    assert "sro_2" in standard_observables(lattice, sro_shells=2)
