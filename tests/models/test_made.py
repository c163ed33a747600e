"""MADE: normalisation by enumeration, the autoregressive property, and sample/log_prob agreement."""

import itertools
import math

import pytest
import torch

from lattherm.lattices import make_lattice
from lattherm.models import MADE, MADEConfig, build_model, model_spec


def all_configs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.long)


def randomised(model: MADE, seed: int = 0) -> MADE:
    """Random non-zero weights everywhere (the output layer starts at zero by design)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("size", [(2, 3), (3, 4)])
def test_normalised_by_enumeration(size, residual):
    lat = make_lattice("square", size)
    model = randomised(MADE(MADEConfig(hidden=24, depth=3, residual=residual), lat.n_sites))
    x = all_configs(lat.n_sites)
    total = torch.logsumexp(model.log_prob(x), dim=0)
    assert abs(total.item()) < 1e-10


def test_normalised_with_canonical_constraint_and_cond():
    lat = make_lattice("square", (3, 3))
    model = randomised(MADE(MADEConfig(hidden=16, depth=2, n_cond=2), lat.n_sites), seed=1)
    x = all_configs(9)
    for n_ones in (0, 4, 9):
        for c in ([0.3, -1.0], [1.2, 0.5]):
            cond = torch.tensor([c]).expand(len(x), 2)
            lp = model.log_prob(x, cond=cond, n_ones=n_ones)
            right = x.sum(1) == n_ones
            assert torch.all(torch.isinf(lp[~right]))
            assert abs(torch.logsumexp(lp[right], 0).item()) < 1e-10
            assert math.comb(9, n_ones) == int(right.sum())
    # the conditioning really changes the distribution
    a = model.log_prob(x, cond=torch.tensor([[0.3, -1.0]]).expand(len(x), 2))
    b = model.log_prob(x, cond=torch.tensor([[1.2, 0.5]]).expand(len(x), 2))
    assert (a - b).abs().max() > 1e-3


def test_conditionals_ignore_later_sites():
    lat = make_lattice("square", (3, 3))
    model = randomised(MADE(MADEConfig(hidden=32, depth=3, residual=True), lat.n_sites), seed=2)
    x = torch.randint(0, 2, (1, 9)).float().requires_grad_(True)
    logits = model.logits(x)
    for i in range(9):
        (grad,) = torch.autograd.grad(logits[0, i], x, retain_graph=True)
        assert torch.all(grad[0, i:] == 0), f"site {i} depends on a later site"
        if i > 0:
            assert grad[0, :i].abs().sum() > 0


def test_sample_log_q_matches_log_prob_and_frequencies():
    lat = make_lattice("square", (2, 2))
    model = randomised(MADE(MADEConfig(hidden=8, depth=2), lat.n_sites), seed=3)
    gen = torch.Generator().manual_seed(0)
    x, log_q = model.sample(20000, generator=gen)
    assert torch.allclose(log_q, model.log_prob(x), atol=1e-12)
    # empirical frequencies against the exact q over all 16 states
    idx = (x * (2 ** torch.arange(3, -1, -1))).sum(1)
    freq = torch.bincount(idx, minlength=16).double() / len(x)
    exact = model.log_prob(all_configs(4)).exp()
    assert torch.all((freq - exact).abs() < 5 * torch.sqrt(exact * (1 - exact) / len(x)) + 1e-3)


def test_canonical_samples_have_fixed_count():
    lat = make_lattice("square", (3, 3))
    model = randomised(MADE(MADEConfig(hidden=8), lat.n_sites), seed=4)
    x, log_q = model.sample(500, n_ones=3, generator=torch.Generator().manual_seed(1))
    assert torch.all(x.sum(1) == 3)
    assert torch.allclose(log_q, model.log_prob(x, n_ones=3), atol=1e-12)


def test_factory_roundtrip_and_errors():
    lat = make_lattice("square", 3)
    model = build_model({"kind": "made", "hidden": 12, "depth": 2}, lat)
    assert model_spec(model) == {"kind": "made", "width": 4, "hidden": 12, "depth": 2, "residual": False, "n_cond": 0,
                                 "physics_logits": False, "z2_symmetric": "auto", "lattice_symmetric": "auto"}
    assert model.on_lattice(make_lattice("square", 3)) is model
    with pytest.raises(ValueError, match="size-specific"):
        model.on_lattice(make_lattice("square", 4))
    with pytest.raises(ValueError, match="unknown made hyperparameters"):
        build_model({"kind": "made", "widht": 3}, lat)
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model({"kind": "pixelcnn"}, lat)
    with pytest.raises(ValueError, match="cond"):
        model.log_prob(torch.zeros(2, 9, dtype=torch.long), cond=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="depth"):
        MADEConfig(depth=0)


def test_width_counts_units_per_site_so_no_site_is_blind():
    """VAN's width: width * N units per layer, so every site's conditional can depend on every
    earlier site (the masks' paths); a total width below N - 1 (the legacy ``hidden``) leaves
    the later sites blind to all but the first ``hidden`` sites."""
    lat = make_lattice("square", 4)

    def paths(model):  # (N, N): output site i reaches input site j through the masks
        reach = model.layers[0].mask
        for layer in model.layers[1:]:
            reach = layer.mask @ reach
        return model.out.mask @ reach

    model = MADE(MADEConfig(width=1, depth=2), lat.n_sites)
    assert model.layers[0].weight.shape == (16, 16) and model.layers[1].weight.shape == (16, 16)
    assert torch.equal(paths(model) > 0, torch.ones(16, 16).tril(-1).bool())
    blind = paths(MADE(MADEConfig(hidden=4, depth=2), lat.n_sites)) > 0
    assert not blind[12, 4:12].any() and blind[12, :4].all()
