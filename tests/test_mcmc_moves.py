"""The move interface of the torch MCMC: the registry, declared ensembles, checks, and that the
driver runs a Move object exactly as it runs its name (the physics is in test_mcmc_samplers.py)."""

import numpy as np
import pytest
import torch

from lattherm.hamiltonians.ising import Ising, SherringtonKirkpatrick
from lattherm.lattices import make_lattice
from lattherm.mcmc.moves import MOVES, Flip, Move, Swap, Wolff
from lattherm.mcmc.samplers import run_chains
ENSEMBLES = ("semi_grand", "canonical")


def test_registry_names_and_ensembles():
    assert MOVES == {"flip": Flip, "swap": Swap, "wolff": Wolff}
    assert all(issubclass(kind, Move) and kind.ensemble in ENSEMBLES for kind in MOVES.values())
    assert Swap.ensemble == "canonical" and Flip.ensemble == Wolff.ensemble == "semi_grand"


@pytest.mark.parametrize("name, ham, n_ones", [
    ("flip", Ising(make_lattice("square", 4)), None),  # colour classes, heat bath
    ("flip", SherringtonKirkpatrick(6, seed=1), None),  # random scan, Metropolis
    ("swap", SherringtonKirkpatrick(6, seed=1), 3),
    ("wolff", Ising(make_lattice("square", 4)), None),
])
def test_a_move_object_runs_as_its_name(name, ham, n_ones):
    kwargs = {"n_ones": n_ones, "seed": 4, "observables": {}, "progress": False}
    by_name = run_chains(ham, [0.3, 0.7], 3, 12, move=name, **kwargs)
    by_object = run_chains(ham, [0.3, 0.7], 3, 12, move=MOVES[name](ham), **kwargs)
    assert torch.equal(by_name.final, by_object.final)
    assert np.array_equal(by_name.series["energy"], by_object.series["energy"])
    assert np.array_equal(by_name.acceptance, by_object.acceptance)
    per_sweep = 1 if name == "wolff" else ham.n_sites
    assert by_name.trials == 6 * 12 * per_sweep and np.all((by_name.acceptance > 0) & (by_name.acceptance <= 1))


def test_checks_refuse_what_a_move_cannot_sample():
    ising = Ising(make_lattice("square", 4))
    with pytest.raises(ValueError, match="another Hamiltonian"):
        run_chains(ising, 0.3, 2, 10, move=Flip(Ising(make_lattice("square", 4))))
    with pytest.raises(ValueError, match="n_ones"):
        Flip.check(ising, 8)
    with pytest.raises(ValueError, match="n_ones"):
        Swap.check(ising, 16)
    with pytest.raises(ValueError, match="Wolff"):
        Wolff.check(Ising(make_lattice("square", 4), J=-1.0), None)
    Swap.check(ising, 8)
    Wolff.check(ising, None)


# -- the parallel, bit-sliced CE moves --------------------------------------------------------
from lattherm.ce.published import published_cluster_expansion  # noqa: E402
from lattherm.hamiltonians.base import SemiGrand  # noqa: E402
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian  # noqa: E402
from lattherm.mcmc.moves import colour_classes, interaction_graph, swap_schedules  # noqa: E402

# self-interacting cells (a cluster may hold one site twice through periodic images) and a larger one
CE_CELLS = [("fcc", (2, 2, 2)), ("fcc", (2, 2, 4)), ("fcc_cubic", (2, 2, 2)), ("fcc_cubic", (3, 3, 3))]


def ce_hamiltonian(kind, size):
    return ClusterExpansionHamiltonian(published_cluster_expansion(), make_lattice(kind, size, a=3.8))


@pytest.mark.parametrize("kind, size", CE_CELLS)
def test_packed_energy_changes_equal_full_recomputation(kind, size, generator):
    ham = ce_hamiltonian(kind, size)
    n, b = ham.n_sites, 70  # 70: two words, the second one padded
    x = torch.randint(2, (b, n), generator=generator)
    bits = ham.parity_bits(x)
    flips = ham.packed_flip_delta(bits, torch.arange(n))[:, :b]
    for i in range(n):
        y = x.clone()
        y[:, i] = 1 - y[:, i]
        assert torch.allclose(flips[i], ham.energy(y) - ham.energy(x), rtol=0, atol=1e-12)
    # exchanges of any two sites, neighbours included (they share clusters, some of them twice)
    for i, j in torch.randint(n, (40, 2), generator=generator).tolist():
        if i == j:
            continue
        delta, unlike = ham.packed_swap_delta(bits, torch.tensor([i]), torch.tensor([j]))
        y = x.clone()
        y[:, [i, j]] = x[:, [j, i]]
        assert torch.allclose(delta[0, :b], ham.energy(y) - ham.energy(x), rtol=0, atol=1e-12)
        assert torch.equal(unlike[0, :b], x[:, i] != x[:, j])
    assert torch.equal(ham.parity_bits(x), bits)  # restored
    assert torch.equal(ham.bits_to_species(bits, b).long(), x)


@pytest.mark.parametrize("kind, size", CE_CELLS)
def test_parallel_updates_touch_no_common_cluster(kind, size):
    ham = ce_hamiltonian(kind, size)
    n = ham.n_sites
    # every cluster's sites, from the energy tables: no class holds two sites of one cluster
    clusters = [getattr(ham, f"blocks_order{k}").reshape(-1, k).tolist() for k in ham.orders]
    members = [set(c) - {n} for table in clusters for c in table]
    graph = interaction_graph(ham)
    for c in members:
        for i in c:
            assert c - {i} <= set(graph[i].tolist())
    classes = colour_classes(ham)
    assert sorted(torch.cat(classes).tolist()) == list(range(n))
    colour = {i: k for k, sites in enumerate(classes) for i in sites.tolist()}
    assert all(len({colour[i] for i in c}) == len(c) for c in members)
    for steps in swap_schedules(ham, n_schedules=4):
        assert sum(len(i) for i, _ in steps) == n  # N pair trials per sweep
        for i, j in steps:
            pair = {s: k for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())) for s in (a, b)}
            assert len(pair) == 2 * len(i)
            for c in members:  # a cluster touches at most one pair of a step
                assert len({pair[s] for s in c if s in pair}) <= 1
    if n >= 100:
        assert n / len(classes) > 2 and max(len(i) for i, _ in swap_schedules(ham, 1)[0]) > 1


@pytest.mark.parametrize("move", ["flip", "swap"])
def test_parallel_ce_moves_are_reproducible_and_conserve(move):
    ham = ce_hamiltonian("fcc_cubic", (3, 3, 3))
    h = SemiGrand(ham, 0.01) if move == "flip" else ham
    n_ones = 40 if move == "swap" else None
    kwargs = {"n_ones": n_ones, "observables": {}, "progress": False}
    make = (lambda: Swap(h, parallel=True)) if move == "swap" else (lambda: Flip(h))
    a = run_chains(h, [20.0, 40.0], 70, 6, move=make(), seed=3, **kwargs)
    b = run_chains(h, [20.0, 40.0], 70, 6, move=make(), seed=3, **kwargs)
    c = run_chains(h, [20.0, 40.0], 70, 6, move=make(), seed=4, **kwargs)
    assert torch.equal(a.final, b.final) and np.array_equal(a.acceptance, b.acceptance)
    assert not torch.equal(a.final, c.final)
    assert np.allclose(a.series["energy"][:, -1], h.energy(a.final).numpy(), rtol=0, atol=1e-12)
    assert np.all((a.acceptance > 0) & (a.acceptance < 1))
    if move == "swap":
        assert torch.all(a.final.sum(dim=1) == n_ones)
        assert Swap(h, parallel=True).schedules is not None and MOVES[move](h).schedules is None
    else:
        assert Flip(h).packed is not None and Flip(h, parallel=False).classes is None
