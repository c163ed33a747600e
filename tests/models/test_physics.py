"""Physics-informed logits (lattherm.models.physics): the local Boltzmann factor of the site
being placed given the placed ones. With zero network output the sampler is exact for
non-interacting spins and for an open 1D chain sampled in order; along any order every
non-constant term of the energy is counted once (pair models, SK, the CuAu cluster expansion,
semi-grand dmu); beta from cond equals the same fixed beta; training resumes and checkpoints
reload the physics."""

import itertools
import math

import numpy as np
import pytest
import torch

from lattherm.ce.published import write_published_ce
from lattherm.hamiltonians.base import SemiGrand
from lattherm.hamiltonians.ising import BondIsing, Ising, SherringtonKirkpatrick
from lattherm.lattices import make_lattice
from lattherm.models import build_model
from lattherm.models.physics import PhysicsLogits, attach_physics, set_physics_beta
from lattherm.models.sampling import random_orders
from lattherm.sampling.evaluate import Conditioning
from lattherm.systems import build_system
from lattherm.training import TrainConfig, load_trained_model, train

SMALL = {"d_model": 16, "n_head": 2, "n_layer": 1, "n_freq": 1}


class Chain(BondIsing):
    def identity(self) -> dict:
        return {"model": "chain"}


def all_configs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.long)


def zero_network(kind: str, lattice, **kw):
    """An untrained model: both output layers start at zero, so its logits are the physics term."""
    spec = {"kind": "made", "width": 2, **kw} if kind == "made" else {"kind": "transformer", **SMALL, **kw}
    torch.manual_seed(0)
    return build_model({**spec, "physics_logits": True}, lattice).double()


@pytest.mark.parametrize("kind", ["made", "transformer"])
def test_zero_network_is_exact_for_non_interacting_spins(kind):
    lattice = make_lattice("square", (2, 4))
    beta, h = 0.7, 0.45
    hamiltonian = Ising(lattice, J=0.0, h=h)
    model = attach_physics(zero_network(kind, lattice), hamiltonian, beta=beta)
    x = all_configs(8)
    exact = -beta * hamiltonian.energy(x) - 8 * math.log(2 * math.cosh(beta * h))
    orders = [None] if kind == "made" else [None, random_orders(1, 8, torch.Generator().manual_seed(1))[0]]
    for order in orders:
        kw = {} if order is None else {"order": order}
        torch.testing.assert_close(model.log_prob(x, **kw), exact, atol=1e-12, rtol=0)
        xs, log_q = model.sample(64, generator=torch.Generator().manual_seed(2), **kw)
        torch.testing.assert_close(log_q, -beta * hamiltonian.energy(xs) - 8 * math.log(2 * math.cosh(beta * h)),
                                   atol=1e-12, rtol=0)


def chain(n: int, couplings, h: float = 0.0) -> Chain:
    bonds = np.stack([np.arange(n), (np.arange(n) + 1) % n], 1)
    return Chain(bonds, np.asarray(couplings, dtype=float), n, h=h)


@pytest.mark.parametrize("kind", ["made", "transformer"])
def test_zero_network_reproduces_the_exact_conditionals_of_a_1d_chain_in_order(kind):
    """An open chain (the closing bond of a ring at J = 0) with random couplings, sampled in
    order: p(x_i | x_<i) = exp(beta J_i s_i s_{i-1}) / (2 cosh beta J_i) exactly, so q = p. On
    the ring (closing bond on), the last conditional, the only local one, is exact too."""
    n, beta = 8, 0.9
    lattice = make_lattice("square", (n, 1))
    couplings = np.random.default_rng(3).normal(0.0, 1.0, n)
    x = all_configs(n)
    open_chain = chain(n, np.r_[couplings[:-1], 0.0])
    model = attach_physics(zero_network(kind, lattice), open_chain, beta=beta)
    log_z = math.log(2) + sum(math.log(2 * math.cosh(beta * j)) for j in couplings[:-1])
    torch.testing.assert_close(model.log_prob(x), -beta * open_chain.energy(x) - log_z, atol=1e-12, rtol=0)

    ring = chain(n, couplings)
    attach_physics(model, ring, beta=beta)
    log_p = -beta * ring.energy(x)
    last = model.log_conditionals(x)[:, -1].gather(1, x[:, -1:])[:, 0]
    # exact p(x_{N-1} | x_<N-1): the two configurations that differ in the last site
    partner = torch.cat([x[:, :-1], 1 - x[:, -1:]], 1)
    index = (partner * (2 ** torch.arange(n - 1, -1, -1))).sum(1)
    exact_last = log_p - torch.logaddexp(log_p, log_p[index])
    torch.testing.assert_close(last, exact_last, atol=1e-12, rtol=0)


def _local_energy_sum(physics: PhysicsLogits, x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """sum over sites of E_i(x_i) along ``order``: what the physics logits add up to."""
    N = x.shape[1]
    rank = torch.argsort(order, dim=1)
    sites = torch.arange(N)[None]
    logits = physics(x, sites, rank, rank, None)  # -beta E_i(k), beta = 1
    return -logits.gather(-1, x[..., None])[..., 0].sum(1)


def cuau(tmp_path_factory=None, **kw):
    path = write_published_ce((tmp_path_factory.mktemp("ce") if tmp_path_factory else None) / "cuau.json")
    return build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc",
                         "train_size": [2, 2, 4], **kw}, ce_file=path)


@pytest.fixture(scope="module")
def cuau_system(tmp_path_factory):
    return cuau(tmp_path_factory, ensemble="canonical", concentration=0.5)


@pytest.fixture(scope="module")
def cuau_semi_grand(tmp_path_factory):
    return cuau(tmp_path_factory, dmu=0.05)


@pytest.mark.parametrize("which", ["ising_field", "sk", "cuau", "cuau_semi_grand", "ising_2x2"])
def test_every_energy_term_is_counted_once_along_any_order(which, request):
    """sum_i E_i(x_i) = E(x) - (an x-independent constant: the clusters without odd sites) for
    random x and random orders, on each kind of Hamiltonian."""
    if which == "ising_field":
        hamiltonian = SemiGrand(Ising(make_lattice("square", (3, 4)), J=0.8, h=0.3), 0.2)
    elif which == "ising_2x2":  # a bond reached through two periodic images is counted twice
        hamiltonian = Ising(make_lattice("square", (2, 2)), J=1.0, h=0.1)
    elif which == "sk":
        hamiltonian = SherringtonKirkpatrick(12, seed=4)
    else:
        hamiltonian = request.getfixturevalue("cuau_system" if which == "cuau" else "cuau_semi_grand").hamiltonian
    physics = PhysicsLogits(hamiltonian)
    physics.beta = 1.0
    N = hamiltonian.n_sites
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, 2, (32, N), generator=gen)
    order = random_orders(32, N, gen)
    offset = _local_energy_sum(physics, x, order) - hamiltonian.energy(x)
    assert (offset - offset[0]).abs().max() < 1e-9 * max(1.0, hamiltonian.energy(x).abs().max().item())
    raster = _local_energy_sum(physics, x, torch.arange(N).expand(32, -1)) - hamiltonian.energy(x)
    torch.testing.assert_close(raster, offset, atol=1e-9, rtol=0)


def test_cluster_expansion_physics_is_normalised_cached_and_canonical(cuau_system):
    """16-site CuAu at half filling: normalised by enumeration, sampled ln q = log_prob, the
    KV cache changes nothing, every sample keeps n_ones."""
    system = cuau_system
    x = all_configs(16)
    for kind in ["made", "transformer"]:
        model = zero_network(kind, system.lattice)
        with torch.no_grad():  # a non-zero network on top of the physics
            for p in model.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(6)))
        attach_physics(model, system.hamiltonian, beta=system.beta(800.0))
        order = None if kind == "made" else random_orders(1, 16, torch.Generator().manual_seed(7))[0]
        kw = {} if order is None else {"order": order}
        right = x.sum(1) == 8
        log_q = model.log_prob(x[right], n_ones=8, **kw)
        assert abs(torch.logsumexp(log_q, 0).item()) < 1e-10
        xs, lq = model.sample(64, n_ones=8, generator=torch.Generator().manual_seed(8), **kw)
        assert torch.all(xs.sum(1) == 8)
        torch.testing.assert_close(model.log_prob(xs, n_ones=8, **kw), lq, atol=1e-10, rtol=0)
        xs2, lq2 = model.sample(64, n_ones=8, generator=torch.Generator().manual_seed(8), use_cache=False, **kw)
        assert torch.equal(xs, xs2) and torch.allclose(lq, lq2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["made", "transformer"])
def test_beta_and_dmu_from_cond_equal_the_same_fixed_values(kind):
    """Conditioned on (beta, dmu), the physics reads the batch's values: with the network's
    output zero, a row with cond (beta / 2, dmu / 0.5) gives the fixed-beta, fixed-dmu model."""
    lattice = make_lattice("square", (2, 3))
    base = Ising(lattice, J=1.0)
    model = zero_network(kind, lattice, n_cond=2)
    with torch.no_grad():  # MADE's conditioning enters the output layer: zero it too
        for name, p in model.named_parameters():
            if name.startswith("cond_out"):
                p.zero_()
    attach_physics(model, base, Conditioning(("beta", "dmu"), {"beta": 2.0, "dmu": 0.5}))
    x = all_configs(6)
    cond = torch.tensor([[0.35, 0.4]], dtype=torch.float64).expand(len(x), 2)
    fixed = zero_network(kind, lattice)
    attach_physics(fixed, SemiGrand(base, 0.2), beta=0.7)
    torch.testing.assert_close(model.log_prob(x, cond), fixed.log_prob(x), atol=1e-12, rtol=0)
    exact = -0.7 * SemiGrand(base, 0.2).energy(x)
    assert (fixed.log_prob(x) - exact).std() > 1e-3  # 2D: not the Boltzmann distribution, only its local factors
    set_physics_beta(fixed, 0.0)
    torch.testing.assert_close(fixed.log_prob(x), torch.full((64,), -6 * math.log(2), dtype=torch.float64))


def test_physics_model_without_hamiltonian_refuses():
    lattice = make_lattice("square", (2, 2))
    model = build_model({"kind": "made", "physics_logits": True}, lattice)
    with pytest.raises(ValueError, match="no Hamiltonian attached"):
        model.sample(4)
    attach_physics(model, Ising(lattice))
    with pytest.raises(ValueError, match="inverse temperature"):
        model.sample(4)
    with pytest.raises(ValueError, match="physics_logits needs 2 species"):
        build_model({"kind": "transformer", "n_species": 3, "physics_logits": True, **SMALL}, lattice)


def test_trained_physics_model_round_trips_through_its_checkpoint(tmp_path):
    """Training attaches the physics and anneals its beta; the checkpoint holds only the weights,
    and loading attaches the system's Hamiltonian again at the training temperature."""
    system = build_system({"model": "ising", "lattice": "square", "train_size": [3, 3]})
    torch.manual_seed(0)
    model = build_model({"kind": "made", "width": 2, "physics_logits": True, "z2_symmetric": "auto"}, system.lattice)
    result = train(model, system, TrainConfig(steps=30, batch_size=64, lr=3e-3, anneal=0.9, temperature=2.0),
                   tmp_path, progress=False)
    assert result.log.ESS.iloc[-1] > 0.5
    loaded = load_trained_model(tmp_path / "checkpoint.pt", system)
    assert loaded.checkpoint["model_spec"]["z2_symmetric"] is True
    assert not any("physics" in key for key in loaded.checkpoint["model_state"])
    x = all_configs(9)
    set_physics_beta(result.model, 0.5)
    torch.testing.assert_close(loaded.model.log_prob(x), result.model.log_prob(x), atol=1e-6, rtol=0)
