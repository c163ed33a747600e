"""Any-order Transformer + marginalization head: normalisation by enumeration, the attention
masks (no dependence on unobserved or later sites), cached = uncached sampling, sample/log_prob
agreement, translation equivariance, transfer to other supercells, and MaM self-consistency
training on exactly enumerable lattices."""

import itertools
import math

import pytest
import torch

from lattherm.lattices import make_lattice
from lattherm.models import build_model, model_spec
from lattherm.models.sampling import random_orders
from lattherm.models import transformer
from lattherm.models.transformer import AnyOrderTransformer, TransformerConfig
from lattherm.training import consistency_residuals, training_terms


def all_configs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.long)


def tiny(lattice, seed: int = 0, double: bool = True, **kw) -> AnyOrderTransformer:
    """A small model with random non-zero weights everywhere (both heads start at zero by design)."""
    params = dict(d_model=16, n_head=2, n_layer=2, mlp_ratio=2, n_freq=1, n_bias_shells=2)
    params.update(kw)
    torch.manual_seed(seed)
    model = AnyOrderTransformer(TransformerConfig(**params), lattice)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.4 * torch.randn(p.shape, generator=gen))
    return model.double() if double else model


def consistency_error(model, x, generator) -> float:
    """RMS of the per-step self-consistency residual over all rows."""
    with torch.no_grad():
        return consistency_residuals(model, x, generator=generator)[0].pow(2).mean().sqrt().item()


def translation(lattice, axis: int) -> torch.Tensor:
    """Site permutation of a translation by one primitive vector: site i -> perm[i]."""
    c = lattice.cell_index.copy()
    c[:, axis] = (c[:, axis] + 1) % lattice.repeats[axis]
    n1, n2, n3 = lattice.repeats
    return torch.from_numpy(((c[:, 0] * n2 + c[:, 1]) * n3 + c[:, 2]) * lattice.n_basis + lattice.basis_index)


# -- normalisation -----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(2, 3), (3, 4)])
@pytest.mark.parametrize("order_seed", [None, 2, 3])
@pytest.mark.parametrize("attention_shells", [None, 1])
def test_normalised_by_enumeration(size, order_seed, attention_shells):
    """One order for the whole batch (raster or random): sum_x q(x) = 1, global or local attention."""
    lat = make_lattice("square", size)
    model = tiny(lat, seed=1, attention_shells=attention_shells)
    x = all_configs(lat.n_sites)
    order = None if order_seed is None else random_orders(1, lat.n_sites, torch.Generator().manual_seed(order_seed))[0]
    total = torch.logsumexp(model.log_prob(x, order=order), dim=0)
    assert abs(total.item()) < 1e-12


def test_normalised_with_cond_and_canonical_constraint():
    lat = make_lattice("square", (3, 3))
    model = tiny(lat, seed=3, n_cond=2)
    x = all_configs(9)
    order = random_orders(1, 9, torch.Generator().manual_seed(4))[0]
    for c in ([0.3, -1.0], [1.2, 0.5]):
        cond = torch.tensor([c], dtype=torch.float64).expand(len(x), 2)
        assert abs(torch.logsumexp(model.log_prob(x, cond=cond, order=order), 0).item()) < 1e-12
        for n_ones in (0, 4, 9):
            lp = model.log_prob(x, cond=cond, n_ones=n_ones, order=order)
            right = x.sum(1) == n_ones
            assert int(right.sum()) == math.comb(9, n_ones)
            assert torch.all(torch.isinf(lp[~right]))
            assert abs(torch.logsumexp(lp[right], 0).item()) < 1e-12
    # the conditioning really changes the distribution
    a = model.log_prob(x, cond=torch.tensor([[0.3, -1.0]], dtype=torch.float64).expand(len(x), 2))
    b = model.log_prob(x, cond=torch.tensor([[1.2, 0.5]], dtype=torch.float64).expand(len(x), 2))
    assert (a - b).abs().max() > 1e-3


def test_conditionals_sum_to_one_and_match_the_ordered_pass():
    lat = make_lattice("square", (3, 4))
    model = tiny(lat, seed=5, n_species=3)
    gen = torch.Generator().manual_seed(6)
    B, N = 32, lat.n_sites
    x = torch.randint(0, 3, (B, N), generator=gen)
    order = random_orders(B, N, gen)
    ordered = model.log_conditionals(x, order=order)
    assert torch.allclose(ordered.exp().sum(-1), torch.ones(B, N, dtype=torch.float64), atol=1e-12)
    rank = torch.argsort(order, dim=1)
    for t in (0, 5, N - 1):
        observed = rank < t
        partial = model.conditionals(x, observed, order=order)
        assert torch.allclose(partial.exp().sum(-1), torch.ones(B, N, dtype=torch.float64), atol=1e-12)
        # observed rows are point masses; the next site's row equals the 2N-token pass
        assert torch.all(partial.exp().gather(-1, x[..., None])[..., 0][observed] == 1)
        site = order[:, t]
        rows = torch.arange(B)
        assert torch.allclose(partial[rows, site], ordered[rows, site], atol=1e-12)


# -- attention masks ---------------------------------------------------------------------------
def test_conditionals_ignore_unobserved_and_later_sites():
    lat = make_lattice("square", (3, 4))
    model = tiny(lat, seed=7, n_cond=1)
    gen = torch.Generator().manual_seed(8)
    N = lat.n_sites
    x = torch.randint(0, 2, (1, N), generator=gen)
    cond = torch.tensor([[0.7]], dtype=torch.float64)
    order = random_orders(1, N, gen)[0]
    base = model.log_conditionals(x, cond, order=order)[0]
    for t in range(N):
        later = order[t:]
        y = x.clone()
        y[0, later] = torch.randint(0, 2, (len(later),), generator=gen)
        y[0, order[t]] = 1 - x[0, order[t]]  # always change the site itself too
        changed = model.log_conditionals(y, cond, order=order)[0]
        # site order[s] (s <= t) sees only order[:s]: its conditional is unchanged, exactly
        assert torch.equal(changed[order[: t + 1]], base[order[: t + 1]])
        if t + 1 < N:  # and the conditionals after it do react
            assert not torch.allclose(changed[order[t + 1 :]], base[order[t + 1 :]])
    # the partial pass: changing unobserved sites leaves every conditional unchanged
    observed = torch.zeros(1, N, dtype=torch.bool)
    observed[0, order[:5]] = True
    y = torch.where(observed, x, 1 - x)
    assert torch.equal(model.conditionals(x, observed, cond, order=order),
                       model.conditionals(y, observed, cond, order=order))
    assert torch.equal(model.log_marginal(x, observed, cond), model.log_marginal(y, observed, cond))


def test_log_marginal_of_empty_set_is_zero():
    lat = make_lattice("square", (3, 3))
    model = tiny(lat, seed=9, n_cond=2, double=False)
    x = torch.randint(0, 2, (5, 9))
    cond = torch.randn(5, 2)
    empty = torch.zeros(5, 9, dtype=torch.bool)
    assert torch.equal(model.log_marginal(x, empty, cond), torch.zeros(5, dtype=torch.float64))
    assert torch.all(model.log_marginal(x, ~empty, cond) != 0)


# -- sampling ----------------------------------------------------------------------------------
@pytest.mark.parametrize("double", [True, False])
@pytest.mark.parametrize("n_ones", [None, 5])
@pytest.mark.parametrize("attention_shells", [None, 1])
def test_cached_and_uncached_sampling_agree_with_log_prob(double, n_ones, attention_shells):
    lat = make_lattice("square", (3, 4))
    model = tiny(lat, seed=10, n_cond=1, double=double, attention_shells=attention_shells)
    n = 64
    dtype = torch.float64 if double else torch.float32
    cond = torch.linspace(0.1, 1.0, n, dtype=dtype)[:, None]
    tol = 1e-10 if double else 1e-5
    for order in (None, random_orders(1, 12, torch.Generator().manual_seed(11))[0],
                  random_orders(n, 12, torch.Generator().manual_seed(12))):
        x1, lq1 = model.sample(n, cond, n_ones, torch.Generator().manual_seed(13), order=order)
        x2, lq2 = model.sample(n, cond, n_ones, torch.Generator().manual_seed(13), order=order, use_cache=False)
        assert x1.dtype == torch.int64 and lq1.dtype == torch.float64 and x1.shape == (n, 12)
        assert torch.equal(x1, x2)
        assert (lq1 - lq2).abs().max() < tol
        assert (model.log_prob(x1, cond, n_ones, order=order) - lq1).abs().max() < tol
        if n_ones is not None:
            assert torch.all(x1.sum(1) == n_ones)
    assert len(torch.unique(x1, dim=0)) > 1


def test_samples_follow_the_model_distribution():
    """Empirical frequencies of 20000 samples match exp(log_prob) on 2x2 (chi-square-like bound)."""
    lat = make_lattice("square", (2, 2))
    model = tiny(lat, seed=14, n_layer=1)
    order = torch.tensor([2, 0, 3, 1])
    x, _ = model.sample(20000, generator=torch.Generator().manual_seed(15), order=order)
    codes = (x * (2 ** torch.arange(3, -1, -1))).sum(1)
    freq = torch.bincount(codes, minlength=16).double() / len(x)
    p = model.log_prob(all_configs(4), order=order).exp()
    assert torch.all((freq - p).abs() < 5 * torch.sqrt(p * (1 - p) / len(x)) + 1e-3)


# -- geometry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,size,axis", [("square", (3, 4), 0), ("square", (3, 4), 1),
                                            ("fcc", (2, 2, 3), 2), ("fcc_cubic", (1, 1, 2), 2)])
def test_translation_equivariance(kind, size, axis):
    lat = make_lattice(kind, size)
    model = tiny(lat, seed=16, n_freq=2, d_model=24, n_head=2)
    perm = translation(lat, axis)
    assert sorted(perm.tolist()) == list(range(lat.n_sites)) and not torch.equal(perm, torch.arange(lat.n_sites))
    gen = torch.Generator().manual_seed(17)
    B, N = 8, lat.n_sites
    x = torch.randint(0, 2, (B, N), generator=gen)
    order = random_orders(B, N, gen)
    xt = torch.empty_like(x)
    xt[:, perm] = x
    order_t = perm[order]
    ordered, ordered_t = model.log_conditionals(x, order=order), model.log_conditionals(xt, order=order_t)
    assert torch.allclose(ordered_t[:, perm], ordered, atol=1e-10)
    assert torch.allclose(model.log_prob(xt, order=order_t), model.log_prob(x, order=order), atol=1e-10)
    observed = torch.argsort(order, 1) < N // 2
    observed_t = torch.empty_like(observed)
    observed_t[:, perm] = observed
    partial, partial_t = model.conditionals(x, observed, order=order), model.conditionals(xt, observed_t, order=order_t)
    assert torch.allclose(partial_t[:, perm], partial, atol=1e-10)
    assert torch.allclose(model.log_marginal(xt, observed_t), model.log_marginal(x, observed), atol=1e-10)
    # the raster order is not translation invariant, so this is a real check of the geometry
    assert not torch.allclose(model.log_prob(xt), model.log_prob(x), atol=1e-6)


def test_transfer_to_other_supercells():
    """The same weights run on any supercell that repeats the training cell: normalised there,
    and unchanged when brought back. The rotary periods stay those of the training cell."""
    model = tiny(make_lattice("square", (2, 2)), seed=18, n_cond=1)
    assert model.config.rotary_period == [2, 2]
    cond = torch.tensor([[0.4]], dtype=torch.float64)
    model.on_lattice(make_lattice("square", (4, 4)))
    x16 = torch.randint(0, 2, (4, 16), generator=torch.Generator().manual_seed(19))
    before = model.log_prob(x16, cond.expand(4, 1))
    model.on_lattice(make_lattice("square", (8, 8)))
    assert model.n_sites == 64
    x, lq = model.sample(8, cond.expand(8, 1), generator=torch.Generator().manual_seed(20), n_ones=32)
    assert x.shape == (8, 64) and torch.all(x.sum(1) == 32)
    assert torch.allclose(model.log_prob(x, cond.expand(8, 1), n_ones=32), lq, atol=1e-10)
    model.on_lattice(make_lattice("square", (2, 6)))
    configs = all_configs(12)
    order = random_orders(1, 12, torch.Generator().manual_seed(21))[0]
    total = torch.logsumexp(model.log_prob(configs, cond.expand(len(configs), 1), order=order), 0)
    assert abs(total.item()) < 1e-12
    model.on_lattice(make_lattice("square", (4, 4)))
    assert torch.equal(model.log_prob(x16, cond.expand(4, 1)), before)
    assert model.config.rotary_period == [2, 2]
    with pytest.raises(ValueError, match="must repeat that cell"):
        model.on_lattice(make_lattice("square", (3, 4)))
    with pytest.raises(ValueError, match="lattice kind"):
        model.on_lattice(make_lattice("simple_cubic", 2))


def test_local_attention_over_every_site_equals_global_attention():
    """On 3x3 every other site lies within two shells, so the gathered local attention must give
    exactly what the dense global attention gives, in every pass and in cached sampling."""
    lat = make_lattice("square", (3, 3))
    dense, local = tiny(lat, seed=32, n_cond=1), tiny(lat, seed=32, n_cond=1, attention_shells=2)
    assert local.key_sites.shape == (9, 9)  # itself and the 8 others
    gen = torch.Generator().manual_seed(33)
    x = torch.randint(0, 2, (6, 9), generator=gen)
    cond = torch.rand(6, 1, generator=gen, dtype=torch.float64)
    order = random_orders(6, 9, gen)
    observed = torch.rand(6, 9, generator=gen) < 0.5
    torch.testing.assert_close(local.log_prob(x, cond, order=order), dense.log_prob(x, cond, order=order), atol=1e-12, rtol=0)
    torch.testing.assert_close(local.conditionals(x, observed, cond, order=order),
                               dense.conditionals(x, observed, cond, order=order), atol=1e-12, rtol=0)
    torch.testing.assert_close(local.log_marginal(x, observed, cond), dense.log_marginal(x, observed, cond), atol=1e-12, rtol=0)
    xs_l, lq_l = local.sample(6, cond, generator=torch.Generator().manual_seed(34), order=order)
    xs_d, lq_d = dense.sample(6, cond, generator=torch.Generator().manual_seed(34), order=order)
    assert torch.equal(xs_l, xs_d)
    torch.testing.assert_close(lq_l, lq_d, atol=1e-12, rtol=0)


def test_full_passes_attend_alike_gathered_and_dense(monkeypatch):
    """Full passes over few tokens spread each token's local keys over a dense mask
    (``DENSE_RATIO``); over many they gather them. Both must give the same numbers and gradients."""
    lat = make_lattice("square", (6, 6))
    model = tiny(lat, seed=35, n_cond=1, attention_shells=2, n_bias_shells=3)
    gen = torch.Generator().manual_seed(36)
    x = torch.randint(0, 2, (5, 36), generator=gen)
    cond = torch.rand(5, 1, generator=gen, dtype=torch.float64)
    order = random_orders(5, 36, gen)
    observed = torch.rand(5, 36, generator=gen) < 0.5

    def passes():
        model.zero_grad()
        out = [model.log_prob(x, cond, order=order), model.conditionals(x, observed, cond, order=order),
               model.log_marginal(x, observed, cond)]
        sum(o.sum() for o in out).backward()
        return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    dense_out, dense_grad = passes()
    monkeypatch.setattr(transformer, "DENSE_RATIO", 0)
    gathered_out, gathered_grad = passes()
    for a, b in zip(dense_out + dense_grad, gathered_out + gathered_grad):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_local_attention_sees_only_its_shells():
    """With attention_shells = 1 and one layer, the conditional of a site depends on its nearest
    observed neighbours only, on the training cell and on a larger one."""
    for size in ((4, 4), (8, 8)):
        lat = make_lattice("square", (4, 4))
        model = tiny(lat, seed=30, n_layer=1, attention_shells=1).on_lattice(make_lattice("square", size))
        N = model.n_sites
        x = torch.randint(0, 2, (1, N), generator=torch.Generator().manual_seed(31))
        observed = torch.ones(1, N, dtype=torch.bool)
        observed[0, 0] = False
        base = model.conditionals(x, observed)[0, 0]
        d = torch.from_numpy(model.lattice.distances[0])
        nearest = d[1:].min()
        for j in range(1, N):
            xj = x.clone()
            xj[0, j] = 1 - xj[0, j]
            changed = not torch.allclose(model.conditionals(xj, observed)[0, 0], base, atol=1e-12)
            assert changed == bool(abs(d[j] - nearest) < 1e-9), (size, j, d[j].item())


def test_shell_buckets_match_on_small_and_large_supercells():
    """Bucket k is one distance on every supercell: the k-th shell of the infinite lattice, which
    the large supercell shows in full (the small one may miss shells through periodic images)."""
    for kind, small, large in (("square", (2, 3), (8, 8)), ("fcc", (2, 2, 2), (4, 4, 4))):
        reference = make_lattice(kind, large).shell_distances(3)
        for size in (small, large):
            model = tiny(make_lattice(kind, size), n_bias_shells=3)
            d = torch.from_numpy(model.lattice.distances)
            assert torch.all(model.key_buckets.diagonal() == 0)
            for k in range(1, 4):
                members = d[model.key_buckets == k]
                assert torch.allclose(members, torch.full_like(members, reference[k - 1]))
            assert torch.all(d[model.key_buckets == 4] > reference[2] + 1e-6)
            assert torch.all(model.key_buckets[d < reference[2] + 1e-6] <= 3)


# -- marginalization self-consistency ------------------------------------------------------------
def test_untrained_model_is_exactly_self_consistent():
    """At initialisation q is uniform and ln p(x_S) = -|S| ln K: the penalty vanishes exactly."""
    lat = make_lattice("square", (3, 3))
    torch.manual_seed(22)
    model = AnyOrderTransformer(TransformerConfig(d_model=16, n_head=2, n_species=3), lat).double()
    gen = torch.Generator().manual_seed(23)
    x = torch.randint(0, 3, (16, 9), generator=gen)
    observed = torch.rand(16, 9, generator=gen) < 0.5
    expected = -observed.sum(1).double() * math.log(3)
    assert torch.allclose(model.log_marginal(x, observed), expected, rtol=0, atol=1e-6)
    assert torch.allclose(model.conditionals(x, observed).exp()[~observed], torch.full((int((~observed).sum()), 3), 1 / 3,
                          dtype=torch.float64), atol=1e-12)
    assert consistency_error(model, x, generator=gen) < 1e-6  # the bias -ln K was set in float32


def ising_log_boltzmann(lat, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """All configurations of a small square lattice and beta * sum_<ij> s_i s_j (unnormalised ln P)."""
    x = all_configs(lat.n_sites)
    s = 2.0 * x - 1.0
    pairs = torch.from_numpy(lat.neighbour_pairs(1))
    return x, beta * (s[:, pairs[:, 0]] * s[:, pairs[:, 1]]).sum(1).double()


def exact_log_marginals(lat, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every partial configuration (3^N: each site 0, 1 or unobserved) with its exact ln P(x_S)."""
    x, log_boltz = ising_log_boltzmann(lat, beta)
    log_target = log_boltz - torch.logsumexp(log_boltz, 0)
    parts = torch.tensor(list(itertools.product([0, 1, 2], repeat=lat.n_sites)))
    observed = parts < 2
    xs = torch.where(observed, parts, 0)
    match = ((x[None] == xs[:, None]) | ~observed[:, None]).all(-1)  # (partial, full) compatible
    return xs, observed, torch.logsumexp(log_target.masked_fill(~match, float("-inf")), 1)


def test_marginal_network_can_count():
    """All tokens of a uniform set have the same features for |S| = 1 and |S| = N unless the
    attention can count (the sink); without it ln p(0000) = 4 ln p(0) for every weight."""
    model = tiny(make_lattice("square", (2, 2)), seed=28)
    x = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]])
    one = torch.tensor([[True, False, False, False]] * 2)
    full = torch.ones(2, 4, dtype=torch.bool)
    assert torch.all((model.log_marginal(x, full) - 4 * model.log_marginal(x, one)).abs() > 1e-3)


def test_marginal_network_fits_every_exact_log_marginal_of_2x2_ising():
    """Regression of ln p_theta(x_S) on the exact ln P(x_S) of all 81 partial configurations of
    2x2 Ising at beta = 0.4 (before the sink this plateaued at MSE 0.02, max error 0.43)."""
    lat = make_lattice("square", (2, 2))
    xs, observed, target = exact_log_marginals(lat, 0.4)
    torch.manual_seed(29)
    model = AnyOrderTransformer(TransformerConfig(d_model=32, n_head=2, n_layer=2, n_freq=1), lat)
    opt = torch.optim.Adam(model.marginal.parameters(), lr=3e-3)
    opt.add_param_group({"params": model.marginal_head.parameters()})
    steps = 800
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        loss = (model.log_marginal(xs, observed) - target).pow(2).mean()
        loss.float().backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        err = (model.log_marginal(xs, observed) - target).abs()
    print(f"direct fit 2x2: MSE {err.pow(2).mean().item():.2e}, max error {err.max().item():.4f}")
    # over seeds 29-32 this reached MSE 8e-6 .. 2.5e-4, max error 0.011 .. 0.057: float32 rounding
    # alone moves a seed within that spread, which stays 20x below the sink-less plateau
    assert err.pow(2).mean() < 1e-3 and err.max() < 0.1


@pytest.mark.slow
def test_joint_mam_training_on_2x2_ising():
    """Both networks trained jointly towards 2x2 Ising at beta = 0.4. The conditionals minimise the
    log-variance loss Var_x[ln q(x) - beta sum s_i s_j] over all 16 x along random orders (needs no
    ln Z and weights rare configurations equally); the marginal network learns only through the
    self-consistency penalty. Both reach the exact distribution and each other."""
    lat = make_lattice("square", (2, 2))
    x, log_boltz = ising_log_boltzmann(lat, 0.4)
    log_target = log_boltz - torch.logsumexp(log_boltz, 0)
    P = log_target.exp()
    torch.manual_seed(24)
    model = AnyOrderTransformer(TransformerConfig(d_model=32, n_head=2, n_layer=2, n_freq=1, penalty_fraction=1.0), lat)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = 1000
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(25)
    xs, target = x.repeat(8, 1), log_boltz.repeat(8)
    for _ in range(steps):
        opt.zero_grad()
        log_var = (model.log_prob(xs, order=random_orders(len(xs), 4, gen)) - target).var()
        (log_var.float() + training_terms(model, xs, generator=gen).auxiliary_loss).backward()
        opt.step()
        sched.step()
    samples = x[torch.multinomial(P, 2000, replacement=True, generator=torch.Generator().manual_seed(0))]
    err = consistency_error(model, samples, generator=torch.Generator().manual_seed(0))
    err_all = consistency_error(model, x.repeat(50, 1), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        lp = model.log_marginal(x, torch.ones_like(x, dtype=torch.bool))
        lq = torch.stack([model.log_prob(x, order=random_orders(1, 4, torch.Generator().manual_seed(k))[0])
                          for k in range(5)])
        partial, observed, exact = exact_log_marginals(lat, 0.4)
        marginal_err = (model.log_marginal(partial, observed) - exact).abs().max().item()
    kl = (P * (log_target - lq)).sum(1).max().item()
    print(f"joint 2x2: KL(P||q) {kl:.2e}, consistency RMS {err:.4f} (x ~ P), {err_all:.4f} (all x), "
          f"max|ln p - ln P| {(lp - log_target).abs().max().item():.4f}, "
          f"max|ln q - ln P| {(lq - log_target).abs().max().item():.4f}, max partial |ln p - ln P| {marginal_err:.4f}")
    # over seeds 24-26: KL 5e-6 .. 5e-5, consistency RMS 0.003 .. 0.012, max |ln p - ln P| 0.007 .. 0.019,
    # max |ln q - ln P| 0.010 .. 0.040 (float32 rounding alone moves a seed within that spread)
    assert kl < 1e-4 and err < 0.02 and err_all < 0.02
    assert (lp - log_target).abs().max() < 0.03 and (lq - log_target).abs().max() < 0.06 and marginal_err < 0.05


def test_training_terms_share_one_marginal_pass_and_subsample_the_penalty():
    """ln q_train is the exact ln q along the sampling order or the one-pass marginal of every
    row; the penalty and its logged RMS come from the first penalty_fraction of the rows, equal
    to the residuals computed on those rows alone."""
    lat = make_lattice("square", (2, 3))
    model = tiny(lat, seed=28, penalty_fraction=0.25, score="marginal")
    x = torch.randint(0, 2, (8, 6), generator=torch.Generator().manual_seed(0))
    terms = training_terms(model, x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(terms.log_prob, model.log_marginal(x, torch.ones_like(x, dtype=torch.bool)))
    model.config.score = "exact"
    exact = training_terms(model, x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(exact.log_prob, model.log_prob(x))
    assert torch.equal(exact.auxiliary_loss, terms.auxiliary_loss)
    step, full, _ = consistency_residuals(model, x[:2], generator=torch.Generator().manual_seed(1))
    penalty = step.pow(2).mean() + full.pow(2).mean() / 6
    torch.testing.assert_close(terms.auxiliary_loss, penalty.float())
    assert terms.consistency_error == pytest.approx(step.pow(2).mean().sqrt().item())
    assert terms.consistency_error > 0  # random weights are not self-consistent
    terms.auxiliary_loss.backward()
    assert model.head.weight.grad.abs().sum() > 0 and model.marginal_head.weight.grad.abs().sum() > 0


# -- contract, checkpoints and bad input ---------------------------------------------------------
def test_spec_roundtrip_rebuilds_an_equal_model():
    lat = make_lattice("square", (3, 3))
    model = tiny(lat, seed=26, double=False, n_cond=2)
    spec = model_spec(model)
    assert spec["kind"] == "transformer" and spec["n_cond"] == 2 and spec["rotary_period"] == [3, 3]
    clone = build_model(spec, lat)
    clone.load_state_dict(model.state_dict())
    x = torch.randint(0, 2, (6, 9))
    cond = torch.randn(6, 2)
    assert torch.equal(clone.log_prob(x, cond), model.log_prob(x, cond))
    full = torch.ones_like(x, dtype=torch.bool)
    assert torch.equal(clone.log_marginal(x, full, cond), model.log_marginal(x, full, cond))


def test_bad_input_raises_clear_errors():
    lat = make_lattice("square", (2, 3))
    model = tiny(lat, seed=27, n_cond=1)
    x = torch.zeros(2, 6, dtype=torch.long)
    cond = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 5, dtype=torch.long), cond)
    with pytest.raises(ValueError, match="species indices"):
        model.log_prob(x + 2, cond)
    with pytest.raises(ValueError, match="n_ones"):
        model.sample(2, cond, n_ones=7)
    with pytest.raises(ValueError, match="permutation"):
        model.log_prob(x, cond, order=torch.tensor([0, 1, 2, 3, 4, 4]))
    with pytest.raises(ValueError, match="cond"):
        model.log_prob(x)
    with pytest.raises(ValueError, match="n_ones"):
        training_terms(model, x, cond, n_ones=3)
    with pytest.raises(ValueError, match="n_species"):
        TransformerConfig(n_species=1)
    with pytest.raises(ValueError, match="head dimension"):
        AnyOrderTransformer(TransformerConfig(d_model=8, n_head=2, n_freq=2), make_lattice("fcc", 2))
