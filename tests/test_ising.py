"""Spin Hamiltonians against plain-Python bond sums and full recomputation of local moves."""

import copy
import itertools

import numpy as np
import pytest
import torch

from lattherm.hamiltonians.base import Hamiltonian
from lattherm.hamiltonians.ising import BondIsing, EdwardsAnderson, Ising, SherringtonKirkpatrick
from lattherm.lattices import make_lattice


def random_batch(n_sites, batch, generator):
    return torch.randint(0, 2, (batch, n_sites), generator=generator)


def square_bonds(L):
    """Right and down neighbours of each site of the periodic L x L square lattice (row-major)."""
    return [(i * L + j, ((i + 1) % L) * L + j) for i in range(L) for j in range(L)] + \
           [(i * L + j, i * L + (j + 1) % L) for i in range(L) for j in range(L)]


def cubic_bonds(L):
    index = lambda i, j, k: ((i % L) * L + j % L) * L + k % L  # noqa: E731
    return [(index(i, j, k), index(i + di, j + dj, k + dk))
            for i, j, k in itertools.product(range(L), repeat=3)
            for di, dj, dk in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]


def loop_energy(x, bonds, couplings, h=0.0):
    s = [2 * int(v) - 1 for v in x]
    return -sum(J * s[i] * s[j] for (i, j), J in zip(bonds, couplings)) - h * sum(s)


@pytest.mark.parametrize("L", [2, 3, 5])
def test_square_ising_energy_matches_bond_loop(L, generator):
    H = Ising(make_lattice("square", L), J=0.7, h=0.3)
    x = random_batch(L * L, 20, generator)
    bonds = square_bonds(L)
    expected = [loop_energy(row, bonds, [0.7] * len(bonds), 0.3) for row in x.tolist()]
    np.testing.assert_allclose(H(x).numpy(), expected, rtol=1e-14, atol=1e-12)


def test_ising_ground_states_and_simple_cubic_energy(generator):
    H = Ising(make_lattice("simple_cubic", 3), J=1.0)
    assert torch.equal(H(torch.ones(1, 27, dtype=torch.long)), torch.tensor([-81.0], dtype=torch.float64))
    x = random_batch(27, 10, generator)
    bonds = cubic_bonds(3)
    expected = [loop_energy(row, bonds, [1.0] * len(bonds)) for row in x.tolist()]
    np.testing.assert_allclose(H(x).numpy(), expected, rtol=1e-14)


def test_fcc_ising_energy_matches_distance_loop(generator):
    lat = make_lattice("fcc", (4, 4, 8), a=3.8)
    H = Ising(lat, J=-1.0)  # antiferromagnet: frustrated on FCC
    d = lat.distances
    bonds = [(i, j) for i in range(lat.n_sites) for j in range(i + 1, lat.n_sites) if abs(d[i, j] - 3.8 / 2**0.5) < 1e-6]
    assert len(bonds) == 6 * lat.n_sites
    x = random_batch(lat.n_sites, 4, generator)
    expected = [loop_energy(row, bonds, [-1.0] * len(bonds)) for row in x.tolist()]
    np.testing.assert_allclose(H(x).numpy(), expected, rtol=1e-14)


def hamiltonians():
    return [
        Ising(make_lattice("square", 2), J=1.0, h=0.4),  # every bond doubled through images
        Ising(make_lattice("square", 4), J=1.3, h=-0.2),
        Ising(make_lattice("fcc", (2, 2, 4), a=3.8), J=-0.5, h=0.1),
        EdwardsAnderson(make_lattice("square", 2), seed=3),
        EdwardsAnderson(make_lattice("square", 5), seed=1),
        EdwardsAnderson(make_lattice("simple_cubic", 3), seed=2),
        SherringtonKirkpatrick(12, seed=4),
    ]


@pytest.mark.parametrize("H", hamiltonians(), ids=lambda H: f"{type(H).__name__}{H.n_sites}")
def test_flip_delta_matches_recomputation(H, generator):
    x = random_batch(H.n_sites, 64, generator)
    sites = torch.randint(0, H.n_sites, (64,), generator=generator)
    np.testing.assert_allclose(H.flip_delta(x, sites).numpy(), Hamiltonian.flip_delta(H, x, sites).numpy(),
                               rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("H", [H for H in hamiltonians() if isinstance(H, BondIsing)],
                         ids=lambda H: f"{type(H).__name__}{H.n_sites}")
def test_flip_deltas_of_a_site_set_match_recomputation(H, generator):
    """Every site of a set flipped alone, on every configuration (the colour-class sweeps)."""
    x = random_batch(H.n_sites, 16, generator)
    sites = torch.randperm(H.n_sites, generator=generator)[: max(1, H.n_sites // 2)]
    expected = torch.stack([Hamiltonian.flip_delta(H, x, site.repeat(len(x))) for site in sites], dim=1)
    np.testing.assert_allclose(H.flip_deltas(x, sites).numpy(), expected.numpy(), rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("H", hamiltonians(), ids=lambda H: f"{type(H).__name__}{H.n_sites}")
def test_swap_delta_matches_recomputation(H, generator):
    x = random_batch(H.n_sites, 96, generator)
    i = torch.randint(0, H.n_sites, (96,), generator=generator)
    j = torch.randint(0, H.n_sites, (96,), generator=generator)
    if hasattr(H, "neighbours"):  # a third of the swaps between bonded sites, where the bond matters
        j[:32] = H.neighbours[i[:32], 0]
    j[32:40] = i[32:40]  # and some of a site with itself
    np.testing.assert_allclose(H.swap_delta(x, i, j).numpy(), Hamiltonian.swap_delta(H, x, i, j).numpy(),
                               rtol=1e-13, atol=1e-12)


def test_edwards_anderson_couplings_are_seeded_plus_minus_one(generator):
    lat = make_lattice("square", 6)
    a, b, c = EdwardsAnderson(lat, seed=7), EdwardsAnderson(lat, seed=7), EdwardsAnderson(lat, seed=8)
    assert torch.equal(a.couplings, b.couplings) and not torch.equal(a.couplings, c.couplings)
    assert set(a.couplings.tolist()) == {-1.0, 1.0} and len(a.couplings) == 2 * lat.n_sites
    x = random_batch(lat.n_sites, 10, generator)
    expected = [loop_energy(row, a.bonds.tolist(), a.couplings.tolist()) for row in x.tolist()]
    np.testing.assert_allclose(a(x).numpy(), expected, rtol=1e-14)
    # The bonds are exactly the nearest-neighbour bonds of the lattice.
    assert sorted(map(tuple, a.bonds.tolist())) == sorted(tuple(sorted(p)) for p in square_bonds(6))


def test_sherrington_kirkpatrick_energy_and_coupling_statistics(generator):
    n = 200
    H = SherringtonKirkpatrick(n, seed=5)
    J = H.coupling_matrix
    assert torch.equal(J, J.T) and torch.all(J.diagonal() == 0)
    assert torch.equal(J, SherringtonKirkpatrick(n, seed=5).coupling_matrix)
    upper = J[torch.triu_indices(n, n, offset=1).unbind()]
    # Variance 1/N: 19900 draws estimate N * E[J^2] = 1 with a standard error of 0.01.
    assert abs(float(n * (upper**2).mean()) - 1.0) < 0.05 and abs(float(upper.mean())) < 0.005
    small = SherringtonKirkpatrick(7, seed=1)
    x = random_batch(7, 10, generator)
    Jm = small.coupling_matrix.tolist()
    expected = [-sum(Jm[i][j] * (2 * r[i] - 1) * (2 * r[j] - 1) for i in range(7) for j in range(i + 1, 7))
                for r in x.tolist()]
    np.testing.assert_allclose(small(x).numpy(), expected, rtol=1e-13)


@pytest.mark.parametrize("H", hamiltonians(), ids=lambda H: f"{type(H).__name__}{H.n_sites}")
def test_input_dtypes_and_device_moves(H, generator):
    x = random_batch(H.n_sites, 5, generator)
    e = H(x)
    assert e.dtype == torch.float64 and e.shape == (5,)
    for dtype in (torch.bool, torch.uint8, torch.float32):
        assert torch.equal(H(x.to(dtype)), e)
    # Every tensor the energy touches is a buffer: on the meta device nothing stays behind on CPU.
    meta = copy.deepcopy(H).to("meta")
    assert meta.device.type == "meta"
    sites = torch.zeros(5, dtype=torch.long, device="meta")
    for out in (meta(x.to("meta")), meta.flip_delta(x.to("meta"), sites), meta.swap_delta(x.to("meta"), sites, sites)):
        assert out.device.type == "meta" and out.dtype == torch.float64 and out.shape == (5,)


def test_bad_inputs():
    with pytest.raises(ValueError, match="square or simple_cubic"):
        EdwardsAnderson(make_lattice("fcc", (2, 2, 4)))
    with pytest.raises(ValueError, match="at least 2 sites"):
        SherringtonKirkpatrick(1)
    with pytest.raises(ValueError, match="finite"):
        Ising(make_lattice("square", 3), J=float("nan"))
    with pytest.raises(ValueError, match=r"shape \(B, 9\)"):
        Ising(make_lattice("square", 3))(torch.zeros(2, 8))
