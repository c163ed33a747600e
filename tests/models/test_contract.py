"""The contract every model satisfies, checked over every model kind: normalisation by exact
enumeration (grand canonical and fixed n_ones), the autoregressive property, sampling (cached
where the model caches) returning the ln q that ``log_prob`` recomputes, and ``on_lattice``.
The ``physics`` variants add the local Boltzmann factor of a random-coupling pair model with a
field (beta fixed, or read from cond with beta and dmu)."""

import itertools

import pytest
import torch

from lattherm.lattices import make_lattice
from lattherm.models import Autoregressive, build_model
from lattherm.models.physics import attach_physics
from lattherm.models.sampling import random_orders
from lattherm.models.symmetric import Z2Symmetric
from lattherm.sampling.evaluate import Conditioning

from pair_models import random_bonds

SMALL = {"d_model": 16, "n_head": 2, "n_layer": 2, "mlp_ratio": 2, "n_freq": 1}
KINDS = {
    "made": {"kind": "made", "hidden": 24, "depth": 2},
    "made_residual_cond": {"kind": "made", "hidden": 24, "depth": 3, "residual": True, "n_cond": 1},
    "transformer": {"kind": "transformer", **SMALL},
    "transformer_local": {"kind": "transformer", "attention_shells": 1, **SMALL},
    "transformer_cond": {"kind": "transformer", "n_cond": 2, **SMALL},
    "z2_made": {"kind": "made", "hidden": 24, "depth": 2, "z2": True},
    "z2_transformer": {"kind": "transformer", "z2": True, **SMALL},
    "z2_transformer_local_cond": {"kind": "transformer", "attention_shells": 1, "n_cond": 1, "z2": True, **SMALL},
    "made_physics": {"kind": "made", "hidden": 24, "depth": 2, "physics_logits": True},
    "made_physics_cond": {"kind": "made", "width": 3, "depth": 2, "n_cond": 2, "physics_logits": True},
    "transformer_physics": {"kind": "transformer", "physics_logits": True, **SMALL},
    "transformer_local_physics_cond": {"kind": "transformer", "attention_shells": 1, "n_cond": 2,
                                       "physics_logits": True, **SMALL},
    "z2_transformer_physics": {"kind": "transformer", "z2": True, "physics_logits": True, **SMALL},
    # built on the site count alone (a cell without a lattice, e.g. SK): one embedding per site
    "transformer_sites": {"kind": "transformer", "cell": "sites", **SMALL, "n_freq": 0, "n_bias_shells": 0},
    "transformer_sites_physics_cond": {"kind": "transformer", "cell": "sites", **SMALL, "n_freq": 0, "n_bias_shells": 0,
                                       "n_cond": 2, "physics_logits": True},
}
SIZE_SPECIFIC = {name for name, spec in KINDS.items() if spec["kind"] == "made" or spec.get("cell") == "sites"}


def attach(model, lattice):
    """Attach the pair model of ``lattice`` to a physics variant: beta 0.7 fixed, or (n_cond 2)
    beta and dmu read from cond."""
    n_cond = model.hyperparameters().get("n_cond", 0)
    conditioning = Conditioning(("beta", "dmu"), {"beta": 1.3, "dmu": 0.5}) if n_cond == 2 else None
    return attach_physics(model, random_bonds(lattice), conditioning, beta=0.7)


def make(name: str, lattice, seed: int = 0):
    """The model ``name`` on ``lattice`` in float64, with random non-zero weights everywhere
    (both output layers start at zero by design, which would make every check trivial)."""
    spec = dict(KINDS[name])
    z2 = spec.pop("z2", False)
    cell = lattice.n_sites if spec.pop("cell", "lattice") == "sites" else lattice
    torch.manual_seed(seed)
    model = build_model(spec, cell)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.4 * torch.randn(p.shape, generator=gen))
    model = model.double()
    model = Z2Symmetric(model) if z2 else model
    return attach(model, lattice)


def cond_for(model, batch: int, seed: int = 1):
    n_cond = model.hyperparameters().get("n_cond", 0)
    if not n_cond:
        return None
    row = torch.rand(1, n_cond, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.2
    return row.expand(batch, n_cond)


def all_configs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.long)


def orders(model, n_sites: int):
    """The orders the model samples along: raster, plus random ones for the any-order transformer."""
    if "d_model" not in model.hyperparameters():
        return [None]
    return [None, random_orders(1, n_sites, torch.Generator().manual_seed(5))[0]]


def check_normalised(model, lattice) -> None:
    x = all_configs(lattice.n_sites)
    cond = cond_for(model, len(x))
    kw = {} if isinstance(model, Z2Symmetric) else {"order": orders(model, lattice.n_sites)[-1]}
    log_q = model.log_prob(x, cond, **kw)
    assert abs(torch.logsumexp(log_q, 0).item()) < 1e-12
    assert log_q.max() - log_q.min() > 0.1  # a random model, not the uniform distribution
    half = lattice.n_sites // 2
    for n_ones in ([half] if isinstance(model, Z2Symmetric) else [1, half]):
        log_q = model.log_prob(x, cond, n_ones=n_ones, **kw)
        right = x.sum(1) == n_ones
        assert torch.all(torch.isneginf(log_q[~right]))
        assert abs(torch.logsumexp(log_q[right], 0).item()) < 1e-12


@pytest.mark.parametrize("name", KINDS)
def test_normalised_by_enumeration(name):
    lattice = make_lattice("square", (2, 4))
    check_normalised(make(name, lattice), lattice)


@pytest.mark.parametrize("name", KINDS)
def test_autoregressive_property(name):
    """The conditional of the site placed at step t is unchanged, exactly, when the sites placed
    at t and later change; the later conditionals do change. (The Z2 mixture is not
    autoregressive: it must instead be mirror symmetric, which its base is not.)"""
    lattice = make_lattice("square", (3, 3))
    model = make(name, lattice)
    N = lattice.n_sites
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(0, 2, (1, N), generator=gen)
    cond = cond_for(model, 1)
    if isinstance(model, Z2Symmetric):
        assert not isinstance(model, Autoregressive)
        xs = torch.randint(0, 2, (16, N), generator=gen)
        torch.testing.assert_close(model.log_prob(xs, cond_for(model, 16)), model.log_prob(1 - xs, cond_for(model, 16)),
                                   atol=1e-12, rtol=0)
        assert not torch.allclose(model.base.log_prob(xs, cond_for(model, 16)), model.base.log_prob(1 - xs, cond_for(model, 16)))
        return
    for order in orders(model, N):
        o = torch.arange(N) if order is None else order
        base = model.log_conditionals(x, cond, order=order)[0]
        reacted = False
        for t in range(N):
            y = x.clone()
            y[0, o[t:]] = torch.randint(0, 2, (N - t,), generator=gen)
            y[0, o[t]] = 1 - x[0, o[t]]
            changed = model.log_conditionals(y, cond, order=order)[0]
            assert torch.equal(changed[o[: t + 1]], base[o[: t + 1]]), (name, t)
            reacted |= t + 1 < N and not torch.allclose(changed[o[t + 1 :]], base[o[t + 1 :]])
        assert reacted


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("n_ones", [None, 6])
def test_sampled_log_q_is_log_prob(name, n_ones):
    """ln q returned by the (cached) sampler equals log_prob of the drawn samples, which it
    recomputes in one uncached pass; fixed n_ones holds in every sample."""
    lattice = make_lattice("square", (3, 4))
    model = make(name, lattice)
    n = 64
    cond = cond_for(model, n)
    for order in [None] if isinstance(model, Z2Symmetric) else orders(model, lattice.n_sites):
        kw = {} if order is None else {"order": order}
        x, log_q = model.sample(n, cond, n_ones, torch.Generator().manual_seed(3), **kw)
        assert x.dtype == torch.int64 and x.shape == (n, 12) and log_q.dtype == torch.float64
        assert len(torch.unique(x, dim=0)) > 1
        torch.testing.assert_close(model.log_prob(x, cond, n_ones, **kw), log_q, atol=1e-10, rtol=0)
        if n_ones is not None:
            assert torch.all(x.sum(1) == n_ones)
        if isinstance(model, Autoregressive):  # the cache changes nothing: the same draws, the same ln q
            x2, log_q2 = model.sample(n, cond, n_ones, torch.Generator().manual_seed(3), use_cache=False, **kw)
            assert torch.equal(x2, x)
            torch.testing.assert_close(log_q2, log_q, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", KINDS)
def test_on_lattice(name):
    """A model moved to a larger supercell is still normalised and samples its own ln q there
    (MADE, and the transformer without geometry, are tied to their size: they refuse, and accept
    an equal-size cell)."""
    small, large = make_lattice("square", (2, 2)), make_lattice("square", (2, 4))
    model = make(name, small)
    if name in SIZE_SPECIFIC:
        with pytest.raises(ValueError, match="size-specific"):
            model.on_lattice(large)
        assert model.on_lattice(make_lattice("square", (2, 2))).n_sites == 4
        check_normalised(model, small)
        return
    before = model.log_prob(all_configs(4), cond_for(model, 16))
    assert model.on_lattice(large) is model and model.n_sites == 8
    if model.hyperparameters()["physics_logits"]:  # the small cell's tables are gone: attach the large cell's
        with pytest.raises(ValueError, match="no Hamiltonian attached"):
            model.log_prob(all_configs(8), cond_for(model, 256))
        attach(model, large)
    check_normalised(model, large)
    x, log_q = model.sample(32, cond_for(model, 32), generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(model.log_prob(x, cond_for(model, 32)), log_q, atol=1e-10, rtol=0)
    model.on_lattice(small)
    attach(model, small)
    assert torch.equal(model.log_prob(all_configs(4), cond_for(model, 16)), before)
