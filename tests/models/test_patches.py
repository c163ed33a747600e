"""Patches in the any-order Transformer (``patch``): a token is a block of k sites with
vocabulary 2^k. The model contract over patch orders (normalised by enumeration on 2x4 and 4x4
cells, also canonical, conditioned, symmetrised; autoregressive over patches; cached == uncached
sampling), the physics term of a whole patch (every energy term counted once along any patch
order; a whole-cell patch samples the Boltzmann distribution exactly; non-interacting spins
exactly), the MaM penalty over patch steps, transfer, checkpoints and the refusals."""

import itertools
import math

import numpy as np
import pytest
import torch

from lattherm.exact.enumeration import exact_thermo
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.ising import Ising
from lattherm.lattices import LatticeError, lattice_coordinates, lattice_patches, make_lattice
from lattherm.models import build_model
from lattherm.models.physics import PhysicsError, PhysicsLogits, attach_physics
from lattherm.models.sampling import random_orders
from lattherm.models.symmetric import Z2Symmetric
from lattherm.sampling import evaluate
from lattherm.sampling.evaluate import Conditioning
from lattherm.systems import build_system
from lattherm.training import TrainConfig, consistency_residuals, load_trained_model, train

from pair_models import random_bonds

SMALL = {"kind": "transformer", "d_model": 16, "n_head": 2, "n_layer": 2, "mlp_ratio": 2, "n_freq": 1}


def all_configs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.long)


def patch_model(lattice, patch, seed: int = 0, z2: bool = False, **kw):
    """A patch model in float64 with random non-zero weights (both heads start at zero)."""
    torch.manual_seed(seed)
    model = build_model({**SMALL, "patch": patch, **kw}, lattice)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.4 * torch.randn(p.shape, generator=gen))
    model = model.double()
    if kw.get("physics_logits"):
        conditioning = Conditioning(("beta", "dmu"), {"beta": 1.3, "dmu": 0.5}) if kw.get("n_cond") == 2 else None
        attach_physics(model, random_bonds(lattice), conditioning, beta=0.7)
    return Z2Symmetric(model) if z2 else model


def cond_for(model, batch: int):
    n_cond = model.hyperparameters()["n_cond"]
    return torch.tensor([[0.8, -0.6][:n_cond]], dtype=torch.float64).expand(batch, n_cond) if n_cond else None


def patch_order(model, seed: int = 5):
    return random_orders(1, model.n_tokens, torch.Generator().manual_seed(seed))[0]


VARIANTS = {
    "2x2": {"patch": [2, 2]},
    "1x2_local": {"patch": [1, 2], "attention_shells": 1},
    "2x2_cond_physics": {"patch": [2, 2], "n_cond": 2, "physics_logits": True},
    "1x2_local_physics": {"patch": [1, 2], "attention_shells": 1, "physics_logits": True},
}


# -- the patches ---------------------------------------------------------------------------------
def test_patches_are_blocks_that_tile_the_cell():
    lattice = make_lattice("square", (4, 6))
    patches = lattice_patches(lattice, [2, 3])
    assert patches.shape == (4, 6) and sorted(patches.ravel().tolist()) == list(range(24))
    u = lattice_coordinates(lattice)[:, :2]
    for sites in patches:
        corner = u[sites[0]]
        assert np.all(corner % [2, 3] == 0)
        assert {tuple(c) for c in (u[sites] - corner).astype(int)} == set(itertools.product(range(2), range(3)))
    cube = lattice_patches(make_lattice("fcc_cubic", (2, 2, 2)), [1, 1, 1])  # the FCC conventional cube
    assert cube.shape == (8, 4)
    assert lattice_patches(make_lattice("simple_cubic", (4, 4, 2)), [2, 2, 2]).shape == (4, 8)
    np.testing.assert_array_equal(lattice_patches(lattice, None), np.arange(24)[:, None])
    for bad in ([3, 3], [2, 2, 1], [4]):
        with pytest.raises(LatticeError, match=r"patch .* does not tile the 4x6 cell"):
            lattice_patches(lattice, bad)


def test_bad_patches_are_refused_with_one_line():
    lattice = make_lattice("square", (4, 4))
    with pytest.raises(LatticeError, match=r"patch \[3, 2\] does not tile the 4x4 cell"):
        build_model({**SMALL, "patch": [3, 2]}, lattice)
    with pytest.raises(ValueError, match=r"17 sites: a vocabulary of 2\^17 values; at most 16"):
        build_model({**SMALL, "patch": [1, 1, 17]}, make_lattice("simple_cubic", (1, 1, 17)))
    with pytest.raises(ValueError, match="patch must list positive repeats"):
        build_model({**SMALL, "patch": [2, 0]}, lattice)
    with pytest.raises(ValueError, match="patch needs 2 species"):
        build_model({**SMALL, "patch": [2, 2], "n_species": 3}, lattice)
    with pytest.raises(ValueError, match="no geometry to encode"):
        build_model({**SMALL, "patch": [2], "n_freq": 0, "n_bias_shells": 0}, 8)
    model = build_model({**SMALL, "patch": [2, 2], "rotary_period": [1, 1]}, lattice)
    with pytest.raises(LatticeError, match="does not tile the 3x4 cell"):
        model.on_lattice(make_lattice("square", (3, 4)))
    with pytest.raises(ValueError, match="permutation of the patches 0..3"):
        model.log_prob(torch.zeros(1, 16, dtype=torch.long), order=torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ValueError, match="whole patches"):
        model.conditionals(torch.zeros(1, 16, dtype=torch.long), torch.eye(16, dtype=torch.bool)[:1])


# -- the contract ----------------------------------------------------------------------------------
def check_normalised(model, n_sites: int, canonical: list[int]) -> None:
    x = all_configs(n_sites)
    cond = cond_for(model, len(x))
    kw = {} if isinstance(model, Z2Symmetric) else {"order": patch_order(model)}
    log_q = model.log_prob(x, cond, **kw)
    assert abs(torch.logsumexp(log_q, 0).item()) < 1e-12
    assert log_q.max() - log_q.min() > 0.1  # a random model, not the uniform distribution
    for n_ones in canonical:
        log_q = model.log_prob(x, cond, n_ones=n_ones, **kw)
        right = x.sum(1) == n_ones
        assert torch.all(torch.isneginf(log_q[~right]))
        assert abs(torch.logsumexp(log_q[right], 0).item()) < 1e-12


@pytest.mark.parametrize("name", VARIANTS)
def test_normalised_by_enumeration_on_2x4(name):
    lattice = make_lattice("square", (2, 4))
    check_normalised(patch_model(lattice, **VARIANTS[name]), 8, [0, 1, 3, 4, 8])


def test_symmetrised_patch_model_normalised_by_enumeration():
    lattice = make_lattice("square", (2, 4))
    check_normalised(patch_model(lattice, [2, 2], z2=True, physics_logits=True), 8, [4])


@pytest.mark.parametrize("patch", [[2, 2], [2, 4]])
def test_normalised_by_enumeration_on_4x4(patch):
    """All 65536 configurations of a 4x4 cell."""
    lattice = make_lattice("square", (4, 4))
    check_normalised(patch_model(lattice, patch, seed=2, d_model=8, n_layer=1), 16, [5])


@pytest.mark.parametrize("name", VARIANTS)
def test_autoregressive_over_patches(name):
    """The conditional of the patch placed at step t is unchanged, exactly, when the patches
    placed at t and later change; later conditionals do change."""
    lattice = make_lattice("square", (4, 4))
    model = patch_model(lattice, **VARIANTS[name])
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(0, 2, (1, 16), generator=gen)
    cond = cond_for(model, 1)
    patches = model.patches
    for order in (None, patch_order(model)):
        o = torch.arange(model.n_tokens) if order is None else order
        base = model.log_conditionals(x, cond, order=order)[0]
        reacted = False
        for t in range(model.n_tokens):
            y = x.clone()
            later = patches[o[t:]].flatten()
            y[0, later] = torch.randint(0, 2, (len(later),), generator=gen)
            y[0, patches[o[t]]] = 1 - x[0, patches[o[t]]]
            changed = model.log_conditionals(y, cond, order=order)[0]
            assert torch.equal(changed[o[: t + 1]], base[o[: t + 1]]), (name, t)
            reacted |= t + 1 < model.n_tokens and not torch.allclose(changed[o[t + 1 :]], base[o[t + 1 :]])
        assert reacted


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("n_ones", [None, 7])
def test_sampled_log_q_is_log_prob_and_the_cache_changes_nothing(name, n_ones):
    lattice = make_lattice("square", (4, 4))
    model = patch_model(lattice, **VARIANTS[name])
    n = 64
    cond = cond_for(model, n)
    for order in (None, patch_order(model), random_orders(n, model.n_tokens, torch.Generator().manual_seed(9))):
        x, log_q = model.sample(n, cond, n_ones, torch.Generator().manual_seed(3), order=order)
        assert len(torch.unique(x, dim=0)) > 1
        torch.testing.assert_close(model.log_prob(x, cond, n_ones, order=order), log_q, atol=1e-10, rtol=0)
        if n_ones is not None:
            assert torch.all(x.sum(1) == n_ones)
        x2, log_q2 = model.sample(n, cond, n_ones, torch.Generator().manual_seed(3), order=order, use_cache=False)
        assert torch.equal(x2, x)
        torch.testing.assert_close(log_q2, log_q, atol=1e-12, rtol=0)


def test_a_whole_4x4_cell_in_one_step():
    """One patch of 16 sites: one step of vocabulary 2^16, sampled with its exact ln q, also at
    fixed n_ones (the values with another count of ones are masked)."""
    lattice = make_lattice("square", (4, 4))
    model = patch_model(lattice, [4, 4], d_model=8, n_layer=1)
    assert model.n_tokens == 1 and model.vocab == 2**16
    for n_ones in (None, 6):
        x, log_q = model.sample(32, n_ones=n_ones, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(model.log_prob(x, n_ones=n_ones), log_q, atol=1e-10, rtol=0)
    values = model.log_conditionals(torch.zeros(1, 16, dtype=torch.long), n_ones=6)[0, 0]
    assert abs(torch.logsumexp(values, 0).item()) < 1e-12
    ones = torch.tensor([bin(v).count("1") for v in range(2**16)])
    assert torch.all(torch.isneginf(values[ones != 6])) and torch.isfinite(values[ones == 6]).all()


def test_symmetrised_patch_model_samples_its_log_prob():
    lattice = make_lattice("square", (4, 4))
    model = patch_model(lattice, [2, 2], z2=True, physics_logits=True)
    x, log_q = model.sample(64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.log_prob(x), log_q, atol=1e-10, rtol=0)
    torch.testing.assert_close(model.log_prob(1 - x), log_q, atol=1e-10, rtol=0)


def test_transfer_to_a_larger_cell_the_patch_tiles():
    small, large = make_lattice("square", (2, 2)), make_lattice("square", (2, 4))
    model = patch_model(small, [1, 2], attention_shells=1, physics_logits=True)
    before = model.log_prob(all_configs(4))
    assert model.on_lattice(large) is model and model.n_tokens == 4
    attach_physics(model, random_bonds(large), beta=0.7)
    check_normalised(model, 8, [3])
    x, log_q = model.sample(32, generator=torch.Generator().manual_seed(4), order=patch_order(model))
    torch.testing.assert_close(model.log_prob(x, order=patch_order(model)), log_q, atol=1e-10, rtol=0)
    model.on_lattice(small)
    attach_physics(model, random_bonds(small), beta=0.7)
    assert torch.equal(model.log_prob(all_configs(4)), before)


# -- physics of a whole patch --------------------------------------------------------------------
def zero_network(lattice, patch, **kw):
    """Untrained: both output layers start at zero, so the logits are the physics term."""
    torch.manual_seed(0)
    return build_model({**SMALL, "patch": patch, "physics_logits": True, **kw}, lattice).double()


def test_patch_physics_counts_every_energy_term_once_along_any_patch_order():
    """sum over patches of E(v_patch | placed) = E(x), for random x and random patch orders; the
    semi-grand field included; on a 2x2 cell every bond is reached through two images."""
    for size, patch in [((4, 4), [2, 2]), ((4, 6), [1, 3]), ((2, 2), [1, 2])]:
        lattice = make_lattice("square", size)
        hamiltonian = SemiGrand(random_bonds(lattice, seed=1), 0.2)
        model = zero_network(lattice, patch)
        physics = PhysicsLogits(hamiltonian, None, model.patches, model.patch_values)
        physics.beta = 1.0
        gen = torch.Generator().manual_seed(5)
        x = torch.randint(0, 2, (32, lattice.n_sites), generator=gen)
        rank = torch.argsort(random_orders(32, model.n_tokens, gen), dim=1)
        logits = physics(x, torch.arange(model.n_tokens)[None], rank[:, model.site_patch], rank, None)
        summed = -logits.gather(-1, model.tokens(x)[..., None])[..., 0].sum(1)
        torch.testing.assert_close(summed, hamiltonian.energy(x), atol=1e-10, rtol=0)


def test_zero_network_with_a_whole_cell_patch_is_the_boltzmann_distribution():
    lattice = make_lattice("square", (2, 4))
    hamiltonian = random_bonds(lattice, seed=3)
    beta = 0.8
    model = attach_physics(zero_network(lattice, [2, 4]), hamiltonian, beta=beta)
    x = all_configs(8)
    log_z = exact_thermo(hamiltonian, [beta]).log_z[0]
    torch.testing.assert_close(model.log_prob(x), -beta * hamiltonian.energy(x) - log_z, atol=1e-12, rtol=0)


def test_zero_network_is_exact_for_non_interacting_spins():
    lattice = make_lattice("square", (4, 4))
    beta, h = 0.7, 0.45
    hamiltonian = Ising(lattice, J=0.0, h=h)
    model = attach_physics(zero_network(lattice, [2, 2]), hamiltonian, beta=beta)
    exact = lambda x: -beta * hamiltonian.energy(x) - 16 * math.log(2 * math.cosh(beta * h))  # noqa: E731
    for order in (None, patch_order(model)):
        xs, log_q = model.sample(64, generator=torch.Generator().manual_seed(2), order=order)
        torch.testing.assert_close(log_q, exact(xs), atol=1e-12, rtol=0)
        torch.testing.assert_close(model.log_prob(xs, order=order), exact(xs), atol=1e-12, rtol=0)


def test_patch_physics_needs_a_pair_model(tmp_path):
    from lattherm.ce.published import write_published_ce

    system = build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "train_size": [2, 2, 4]},
                          ce_file=write_published_ce(tmp_path / "cuau.json"))
    with pytest.raises(PhysicsError, match="physics_logits with patches needs a pair model .* not ClusterExpansionHamiltonian"):
        attach_physics(zero_network(system.lattice, [1, 1, 2], n_freq=1), system.hamiltonian, beta=1.0)
    attach_physics(zero_network(system.lattice, None, n_freq=1), system.hamiltonian, beta=1.0)  # one site per step: fine


# -- the marginal network over patch steps -------------------------------------------------------
def test_consistency_penalty_over_patch_steps():
    """The untrained model is consistent exactly (uniform conditionals over 2^k values and
    ln p(x_S) = -|S| k ln 2); a random one is not; the residual uses the patch's conditional."""
    lattice = make_lattice("square", (4, 4))
    torch.manual_seed(0)
    untrained = build_model({**SMALL, "patch": [2, 2]}, lattice).double()
    x = torch.randint(0, 2, (16, 16), generator=torch.Generator().manual_seed(1))
    step, full, logp = consistency_residuals(untrained, x, generator=torch.Generator().manual_seed(2))
    # (up to the float32 initial value of the marginal head's bias, -ln 16)
    assert step.abs().max() < 1e-7 and full.abs().max() < 1e-7
    torch.testing.assert_close(logp, torch.full((16,), -16 * math.log(2), dtype=torch.float64), atol=1e-7, rtol=0)
    model = patch_model(lattice, [2, 2])
    order = patch_order(model)
    step, full, _ = consistency_residuals(model, x, order=order, generator=torch.Generator().manual_seed(2))
    assert step.abs().min() > 1e-6
    # the full residual: ln p(x) - ln q(x) along the order
    full_direct = model.log_marginal(x, torch.ones_like(x, dtype=torch.bool)) - model.log_prob(x, order=order)
    torch.testing.assert_close(full, full_direct, atol=1e-12, rtol=0)


# -- training and checkpoints --------------------------------------------------------------------
def test_4x4_ising_at_beta_c_with_2x2_patches(tmp_path):
    """Trained for a few seconds with physics logits and the MaM penalty: F within 4 sigma of
    Kaufman, relative error below 1e-3, ESS > 0.6 (the per-site transformer with physics logits,
    150 steps of 256: relative error 2e-5 +- 1e-4, ESS 0.96, in about 3x the time); the checkpoint
    reloads to the same ln q."""
    system = build_system({"model": "ising", "lattice": "square", "train_size": [4, 4]})
    torch.manual_seed(0)
    model = build_model({"kind": "transformer", "d_model": 16, "n_head": 2, "n_layer": 1, "patch": [2, 2],
                         "physics_logits": True, "z2_symmetric": "auto"}, system.lattice)
    result = train(model, system, TrainConfig(steps=40, batch_size=128, lr=0.005, anneal=0.9, temperature=1 / BETA_C),
                   tmp_path, progress=False)
    assert np.isfinite(result.log.consistency_error).all()
    exact = ising_thermo(4, 4, [BETA_C]).free_energy[0]
    est = evaluate(result.model, system, 1 / BETA_C, n_samples=20000, mcmc_steps=10)
    assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]
    assert abs(est["free_energy"] - exact) / abs(exact) < 1e-3
    assert est["ess"] > 0.6
    loaded = load_trained_model(tmp_path / "checkpoint.pt", system).model
    assert loaded.hyperparameters()["patch"] == [2, 2] and isinstance(loaded, Z2Symmetric)
    x, log_q = result.model.sample(32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loaded.log_prob(x), log_q, atol=1e-6, rtol=0)
