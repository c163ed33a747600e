"""The torch CE Hamiltonian against icet: cluster vectors, energies, local moves, errors."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from icet import ClusterExpansion, ClusterSpace

from lattherm.ce.storage import write_cluster_expansion
from lattherm.hamiltonians import Hamiltonian
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionError, ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice

SPECIES = ("Cu", "Au")
CELLS = [("fcc", (2, 2, 4)), ("fcc", (4, 4, 4)), ("fcc", (4, 4, 8)), ("fcc_cubic", (2, 2, 2)), ("fcc", (3, 3, 3))]


@pytest.fixture(scope="module")
def ce():
    cs = ClusterSpace(bulk("Cu", "fcc", a=3.8), cutoffs=[6.0, 4.5, 4.5], chemical_symbols=list(SPECIES))
    return ClusterExpansion(cs, np.random.default_rng(0).normal(scale=0.02, size=len(cs)))


def random_configs(n_sites, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    fraction = torch.rand(batch, 1, generator=gen)  # random compositions, 0 to 1
    return (torch.rand(batch, n_sites, generator=gen) < fraction).to(torch.int64)


@pytest.mark.parametrize("kind,size", CELLS)
def test_cluster_vector_and_energy_match_icet(ce, kind, size):
    lattice = make_lattice(kind, size, a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    x = random_configs(lattice.n_sites, 70, seed=1)  # 70: not a multiple of the 64-bit packing
    x[0] = 0
    x[1] = 1
    cs = ce.get_cluster_space_copy()
    atoms = [lattice.to_atoms(row, SPECIES) for row in x.numpy()]
    cv_icet = np.array([cs.get_cluster_vector(a) for a in atoms])
    np.testing.assert_allclose(ham.cluster_vector(x).numpy(), cv_icet, rtol=0, atol=1e-15)
    e_icet = np.array([ce.predict(a) for a in atoms])
    e = ham.energy(x)
    assert e.dtype == torch.float64 and e.shape == (70,)
    np.testing.assert_allclose(ham.energy_per_site(x).numpy(), e_icet, rtol=0, atol=1e-10)


def test_1024_site_cell_counts_past_eight_bit_planes(ce):
    """Orbits of 1024 clusters need 11 bit planes to count: the unpacking runs in two groups."""
    lattice = make_lattice("fcc", (8, 8, 16), a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    x = torch.randint(0, 2, (24, lattice.n_sites), generator=torch.Generator().manual_seed(7))
    expected = [ce.predict(lattice.to_atoms(row, ("Cu", "Au"))) for row in x.numpy()]
    np.testing.assert_allclose(ham.energy_per_site(x).numpy(), expected, rtol=0, atol=1e-10)


def test_small_cells_are_self_interacting_yet_exact(ce):
    """icet flags the paper's cells as self-interacting; full energies above are still exact."""
    cs = ce.get_cluster_space_copy()
    for size in [(2, 2, 4), (4, 4, 4), (4, 4, 8)]:
        assert cs.is_supercell_self_interacting(make_lattice("fcc", size, a=3.8).atoms)


@pytest.mark.parametrize("size", [(2, 2, 4), (4, 4, 4), (4, 4, 8), (1, 1, 1)])
def test_flip_and_swap_deltas_match_full_recomputation(ce, size):
    lattice = make_lattice("fcc", size, a=3.8)
    ham = ClusterExpansionHamiltonian(ce, lattice)
    n = lattice.n_sites
    x = random_configs(n, 200, seed=2)
    gen = torch.Generator().manual_seed(3)
    i = torch.randint(n, (200,), generator=gen)
    j = torch.randint(n, (200,), generator=gen)
    full_flip = Hamiltonian.flip_delta(ham, x, i)
    full_swap = Hamiltonian.swap_delta(ham, x, i, j)
    np.testing.assert_allclose(ham.flip_delta(x, i).numpy(), full_flip.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ham.swap_delta(x, i, j).numpy(), full_swap.numpy(), rtol=0, atol=1e-12)
    assert (full_flip != 0).all() and ((full_swap != 0).any() or n == 1)  # the checks are not vacuous
    # swaps of a site with itself and of like species change nothing
    assert torch.all(ham.swap_delta(x, i, i) == 0)


def test_from_file_round_trip_and_errors(ce, tmp_path):
    lattice = make_lattice("fcc", (2, 2, 4), a=3.8)
    path = write_cluster_expansion(ce, tmp_path / "model.json")
    x = random_configs(16, 5, seed=4)
    ham = ClusterExpansionHamiltonian.from_file(path, lattice)
    np.testing.assert_array_equal(ham.energy(x).numpy(), ClusterExpansionHamiltonian(ce, lattice).energy(x).numpy())
    with pytest.raises(ClusterExpansionError, match="not found"):
        ClusterExpansionHamiltonian.from_file(tmp_path / "missing.json", lattice)
    (tmp_path / "bad.json").write_text("not a cluster expansion")
    with pytest.raises(ClusterExpansionError, match="not a readable"):
        ClusterExpansionHamiltonian.from_file(tmp_path / "bad.json", lattice)


def test_lattice_and_species_mismatches_are_rejected(ce):
    with pytest.raises(ClusterExpansionError, match="lattice constant"):
        ClusterExpansionHamiltonian(ce, make_lattice("fcc", (2, 2, 2), a=4.0))
    with pytest.raises(ClusterExpansionError, match="simple_cubic"):
        ClusterExpansionHamiltonian(ce, make_lattice("simple_cubic", 2, a=3.8))
    with pytest.raises(ClusterExpansionError, match="periodic 3D"):
        ClusterExpansionHamiltonian(ce, make_lattice("square", 4, a=3.8))
    with pytest.raises(ClusterExpansionError, match="do not match"):
        ClusterExpansionHamiltonian(ce, make_lattice("fcc", (2, 2, 2), a=3.8), species=("Cu", "Ag"))
    ternary = ClusterSpace(bulk("Cu", "fcc", a=3.8), cutoffs=[4.0], chemical_symbols=["Cu", "Au", "Ag"])
    with pytest.raises(ClusterExpansionError, match="binary"):
        ClusterExpansionHamiltonian(ClusterExpansion(ternary, np.zeros(len(ternary))), make_lattice("fcc", 2, a=3.8))


def test_species_order_is_explicit(ce):
    """Swapping which species x = 1 means flips every site: same energies as 1 - x."""
    lattice = make_lattice("fcc", (2, 2, 4), a=3.8)
    x = random_configs(16, 8, seed=5)
    cu_au = ClusterExpansionHamiltonian(ce, lattice, ("Cu", "Au"))
    au_cu = ClusterExpansionHamiltonian(ce, lattice, ("Au", "Cu"))
    np.testing.assert_allclose(au_cu.energy(1 - x).numpy(), cu_au.energy(x).numpy(), atol=1e-12)
