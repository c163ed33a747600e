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
