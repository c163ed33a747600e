"""The lattice-symmetry mixture q_S(x) = (1/|S|) sum_g q(g x) over the point group of the cell
about one site: exact normalisation by enumeration (and at fixed n_ones), a sampler whose
empirical frequencies are exp(log_prob), and permutations that leave the Hamiltonian invariant,
for MADE and the transformer (conditioned, patched, physics logits) and composed with the spin
flip; then the cell's point groups, refusals, checkpoints and transfer."""

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from lattherm.ce.published import published_cluster_expansion
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.hamiltonians.ising import Ising
from lattherm.lattices import make_lattice, point_group_permutations
from lattherm.models import build_model, model_spec
from lattherm.models.physics import attach_physics
from lattherm.models.symmetric import (LatticeSymmetric, Z2Symmetric, broken_permutations, check_lattice_symmetry,
                                       flat_images, innermost)
from lattherm.sampling.evaluate import Conditioning
from lattherm.systems import build_system
from lattherm.training import TrainConfig, load_trained_model, train

from pair_models import random_bonds

SMALL = {"kind": "transformer", "d_model": 16, "n_head": 2, "n_layer": 2, "mlp_ratio": 2, "n_freq": 1}
# name: (model spec, lattice kind, size, Hamiltonian on it: "ising" (field 0.3), "ising0" (no field), "ce")
VARIANTS = {
    "made_square": ({"kind": "made", "hidden": 24, "depth": 2}, "square", (3, 3), "ising"),
    "transformer_square_physics": ({**SMALL, "physics_logits": True}, "square", (3, 3), "ising"),
    "transformer_cond_fcc": ({**SMALL, "n_cond": 2}, "fcc", (2, 2, 2), "ce"),
    "transformer_patch_physics_cond": ({**SMALL, "patch": [1, 2], "physics_logits": True, "n_cond": 2},
                                       "square", (2, 4), "ising"),
    "made_physics_fcc": ({"kind": "made", "width": 3, "depth": 2, "physics_logits": True}, "fcc", (2, 2, 2), "ce"),
    "z2_made_square": ({"kind": "made", "hidden": 24, "depth": 2, "z2_symmetric": True}, "square", (2, 4), "ising0"),
    "z2_transformer_local": ({**SMALL, "attention_shells": 1, "z2_symmetric": True}, "square", (2, 4), "ising0"),
}


def all_configs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.long)


def hamiltonian(kind: str, lattice):
    if kind == "ce":
        return ClusterExpansionHamiltonian(published_cluster_expansion(), lattice)
    return Ising(lattice, J=1.0, h=0.3 if kind == "ising" else 0.0)


def make(name: str, seed: int = 0):
    """The variant's lattice-symmetric model in float64 with random non-zero weights, its
    lattice and Hamiltonian (attached where the model has physics logits)."""
    spec, kind, size, ham_kind = VARIANTS[name]
    lattice = make_lattice(kind, size, a=3.8 if ham_kind == "ce" else 1.0)
    ham = hamiltonian(ham_kind, lattice)
    torch.manual_seed(seed)
    model = build_model({**spec, "lattice_symmetric": True}, lattice)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.4 * torch.randn(p.shape, generator=gen))
    model = model.double()
    n_cond = spec.get("n_cond", 0)
    conditioning = Conditioning(("beta", "dmu"), {"beta": 1.3, "dmu": 0.5}) if n_cond == 2 else None
    attach_physics(model, ham, conditioning, beta=0.7)
    return model, lattice, ham


def cond_for(model, batch: int):
    n_cond = model.hyperparameters()["n_cond"]
    return torch.tensor([[0.8, -0.6][:n_cond]], dtype=torch.float64).expand(batch, n_cond) if n_cond else None


def lattice_wrapper(model) -> LatticeSymmetric:
    return model.base if isinstance(model, Z2Symmetric) else model


@pytest.mark.parametrize("name", VARIANTS)
@torch.no_grad()
def test_mixture_is_normalised_symmetric_samples_its_own_log_prob_and_keeps_the_energy(name):
    model, lattice, ham = make(name)
    wrapper = lattice_wrapper(model)
    assert isinstance(wrapper, LatticeSymmetric) and len(wrapper.perms) > 1
    N = lattice.n_sites
    x = all_configs(N)
    cond = cond_for(model, len(x))
    # each permutation leaves the Hamiltonian invariant (exactly, on every configuration)
    energy = ham.energy(x)
    for perm in wrapper.perms:
        torch.testing.assert_close(ham.energy(x[:, perm]), energy, atol=1e-12, rtol=0)
    some = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(4))[:64]]
    assert broken_permutations(ham, wrapper.perms) == []
    # normalised by enumeration, and at fixed n_ones (the permutations keep it)
    log_q = model.log_prob(x, cond)
    assert abs(torch.logsumexp(log_q, 0).item()) < 1e-12
    half = N // 2
    for n_ones in ([half] if isinstance(model, Z2Symmetric) else [2, half]):
        log_qc = model.log_prob(x, cond, n_ones=n_ones)
        right = x.sum(1) == n_ones
        assert torch.all(torch.isneginf(log_qc[~right]))
        assert abs(torch.logsumexp(log_qc[right], 0).item()) < 1e-12
    # invariant under the point group, where its base is not
    c64 = cond_for(model, 64)
    for perm in wrapper.perms:
        torch.testing.assert_close(model.log_prob(some[:, perm], c64), model.log_prob(some, c64), atol=1e-12, rtol=0)
    base = innermost(model)
    assert max((base.log_prob(some[:, perm], c64) - base.log_prob(some, c64)).abs().max().item()
               for perm in wrapper.perms) > 0.1
    # sampling: ln q is log_prob, and the frequencies of n draws follow exp(log_prob) (n: about
    # 8 per configuration, at most 8000 draws)
    n = min(8000, 8 * 2 ** N)
    for n_ones in (None, half):
        xs, lq = model.sample(n, cond_for(model, n), n_ones, torch.Generator().manual_seed(3))
        torch.testing.assert_close(model.log_prob(xs[:256], cond_for(model, 256), n_ones), lq[:256], atol=1e-10, rtol=0)
        index = (xs * (2 ** torch.arange(N - 1, -1, -1))).sum(1)  # row of all_configs
        counts = torch.bincount(index, minlength=2 ** N).double()
        expected = n * torch.exp(model.log_prob(x, cond, n_ones))
        keep = expected > 5  # pool the rare configurations into one bin (none at all: not drawn)
        tail = [] if expected[~keep].sum() < 1e-6 else [~keep]
        assert tail or counts[~keep].sum() == 0
        f_obs = torch.cat([counts[keep], *(counts[t].sum()[None] for t in tail)])
        f_exp = torch.cat([expected[keep], *(expected[t].sum()[None] for t in tail)])
        f_exp = f_exp * f_obs.sum() / f_exp.sum()  # float rounding of the sum
        assert chisquare(f_obs.numpy(), f_exp.numpy()).pvalue > 1e-4, name
        if n_ones is not None:
            assert torch.all(xs.sum(1) == n_ones)


@torch.no_grad()
def test_flat_images_compose_the_spin_flip_and_the_point_group():
    model, lattice, _ = make("z2_made_square")
    x = all_configs(8)[100:103]
    images = flat_images(model, x)
    k = 2 * len(model.base.perms)
    assert images.shape == (k, 3, 8) and torch.equal(images[0], x)
    direct = torch.logsumexp(innermost(model).log_prob(images.reshape(-1, 8)).view(k, 3), 0) - np.log(k)
    torch.testing.assert_close(model.log_prob(x), direct, atol=1e-12, rtol=0)


def test_point_groups_of_cells():
    """The stabiliser of one site: the point group of the parent lattice restricted to the
    operations that map the supercell onto itself, as distinct site permutations of a group."""
    sizes = {("square", (8, 8)): 8, ("square", (3, 4)): 4, ("square", (2, 2)): 2, ("fcc", (2, 2, 4)): 12,
             ("fcc", (4, 4, 8)): 12, ("fcc", (4, 4, 4)): 48, ("fcc_cubic", (2, 2, 2)): 48, ("simple_cubic", (3, 3, 3)): 48}
    for (kind, size), order in sizes.items():
        lattice = make_lattice(kind, size)
        perms = point_group_permutations(lattice)
        assert perms.shape == (order, lattice.n_sites), (kind, size)
        assert np.array_equal(perms[0], np.arange(lattice.n_sites)) and (perms[:, 0] == 0).all()
        as_set = {tuple(p) for p in perms}
        assert len(as_set) == order and all(tuple(p[q]) in as_set for p in perms for q in perms)  # closed
        # each maps neighbours to neighbours
        pairs = {tuple(sorted(p)) for p in lattice.neighbour_pairs(1).tolist()}
        for p in perms:
            assert {tuple(sorted((int(p[i]), int(p[j])))) for i, j in pairs} == pairs


def test_broken_permutations_are_refused():
    """Random couplings are not lattice-symmetric: training and checking refuse the mixture."""
    lattice = make_lattice("square", (3, 3))
    model = build_model({"kind": "made", "hidden": 8, "lattice_symmetric": True}, lattice)
    assert len(broken_permutations(random_bonds(lattice), model.perms)) == len(model.perms) - 1
    with pytest.raises(ValueError, match="lattice_symmetric = true, but 7 of the 8"):
        check_lattice_symmetry(model, random_bonds(lattice))
    glass = build_system({"model": "edwards_anderson", "lattice": "square", "train_size": [3, 3]})
    with pytest.raises(ValueError, match="lattice_symmetric = true"):
        train(build_model({"kind": "made", "hidden": 8, "lattice_symmetric": True}, glass.lattice), glass,
              TrainConfig(steps=1, batch_size=4, temperature=1.0), progress=False)
    sk = build_system({"model": "sherrington_kirkpatrick", "train_size": [6]})
    with pytest.raises(ValueError, match="lattice_symmetric needs a lattice"):
        build_model({"kind": "made", "hidden": 8, "lattice_symmetric": True}, sk.cell)
    with pytest.raises(ValueError, match="lattice_symmetric must be true, false or 'auto'"):
        build_model({"kind": "made", "lattice_symmetric": "yes"}, lattice)


def test_auto_resolves_on_cluster_expansions_and_checkpoints_record_it(tmp_path):
    """``auto``: the mixture on a cluster expansion, not on the Ising ferromagnet; the saved spec
    says which, and loading (also onto a larger cell: the permutations are rebuilt) gives the
    trained model back."""
    ising = build_system({"model": "ising", "lattice": "square", "train_size": [2, 2]})
    result = train(build_model({**SMALL, "d_model": 8}, ising.lattice), ising,
                   TrainConfig(steps=2, batch_size=8, temperature=2.0), progress=False)
    assert not isinstance(result.model.base, LatticeSymmetric) and isinstance(result.model, Z2Symmetric)
    assert model_spec(result.model)["lattice_symmetric"] is False
    from lattherm.ce.published import write_published_ce

    ce = write_published_ce(tmp_path / "cuau.json")
    config = {"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "ensemble": "canonical",
              "concentration": 0.5, "train_size": [2, 2, 2]}
    small = build_system(config, ce_file=ce, name="cuau")
    torch.manual_seed(0)
    result = train(build_model({**SMALL, "attention_shells": 1}, small.lattice), small,
                   TrainConfig(steps=3, batch_size=8, temperature=800.0), tmp_path / "run", progress=False)
    # on this 8-site cell the cluster expansion is spin-flip symmetric at x = 1/2 too: both mixtures
    assert isinstance(result.model, Z2Symmetric) and len(lattice_wrapper(result.model).perms) == 24
    assert model_spec(result.model)["lattice_symmetric"] is True
    loaded = load_trained_model(tmp_path / "run" / "checkpoint.pt", small).model
    x = all_configs(8)[all_configs(8).sum(1) == 4]
    torch.testing.assert_close(loaded.log_prob(x, n_ones=4), result.model.log_prob(x, n_ones=4), atol=1e-6, rtol=0)
    large = build_system(config, size=[2, 2, 4], ce_file=ce, name="cuau")
    moved = load_trained_model(tmp_path / "run" / "checkpoint.pt", large, same_size=False).model
    assert lattice_wrapper(moved).perms.shape == (12, 16)
    assert np.array_equal(lattice_wrapper(moved).perms.numpy(), point_group_permutations(large.lattice))
    xs, lq = moved.sample(64, n_ones=8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(moved.log_prob(xs, n_ones=8), lq, atol=1e-6, rtol=0)


def test_mixture_recovers_the_missed_l10_orientations_of_cuau(tmp_path):
    """The default run's CuAu MADE (config.yaml: width 4, depth 2, 400 steps of 256, lr 3e-3,
    anneal 0.985) on the 16-site cell at 450 K learns only some of the three L1_0 orientations:
    F_IS is far above enumeration with a small error bar. Trained as the point-group mixture
    (12 operations), the same budget gives F within 3 sigma; the plain model sampled through the
    mixture does too."""
    from lattherm.ce.published import write_published_ce
    from lattherm.exact.enumeration import enumerate_energies, thermo_from_energies
    from lattherm.sampling.evaluate import evaluate

    system = build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "ensemble": "canonical",
                           "concentration": 0.5, "train_size": [2, 2, 4]}, ce_file=write_published_ce(tmp_path / "c.json"))
    energies, n_ones = enumerate_energies(system.hamiltonian)
    exact = float(thermo_from_energies(energies, n_ones, 16, [system.beta(450.0)], canonical_n_ones=8).free_energy.iloc[0])
    config = TrainConfig(temperature=450.0, steps=400, batch_size=256, lr=3e-3, anneal=0.985, seed=0)
    rows = {}
    for symmetric in (False, True):
        torch.manual_seed(0)
        model = build_model({"kind": "made", "width": 4, "depth": 2, "lattice_symmetric": symmetric}, system.lattice)
        trained = train(model, system, config, progress=False).model
        rows[symmetric] = evaluate(trained, system, 450.0, n_samples=4000, mcmc_chains=4, mcmc_steps=4, seed=1)
        if not symmetric:
            rows["sampled"] = evaluate(trained, system, 450.0, n_samples=4000, mcmc_chains=4, mcmc_steps=4, seed=1,
                                       lattice_symmetric=True)
    sigmas = {k: (r["free_energy"] - exact) / r["free_energy_err"] for k, r in rows.items()}
    print({k: (f"{1e3 * (r['free_energy'] - exact) / 16:+.4f} meV/site", f"{sigmas[k]:+.1f} sigma", f"ESS {r['ess']:.3f}")
           for k, r in rows.items()})
    assert sigmas[False] > 5 and not rows[False]["lattice_symmetric"]
    assert abs(sigmas[True]) < 3 and rows[True]["lattice_symmetric"] and rows[True]["ess"] > 0.5
    assert abs(sigmas["sampled"]) < 3 and rows["sampled"]["lattice_symmetric"]


@torch.no_grad()
def test_marginal_score_of_the_mixture_averages_the_marginal_over_every_image():
    """``score: marginal``: the mixture's training ln q is ln mean_k p_theta(image_k) over the
    images of the spin flip and the point group composed."""
    from lattherm.training.variational import training_terms

    lattice = make_lattice("square", (2, 4))
    torch.manual_seed(0)
    model = build_model({**SMALL, "score": "marginal", "z2_symmetric": True, "lattice_symmetric": True}, lattice).double()
    x = all_configs(8)[::17]
    terms = training_terms(model, x, generator=torch.Generator().manual_seed(0))
    images = flat_images(model, x)
    base = innermost(model)
    marginals = base.log_marginal(images.reshape(-1, 8), torch.ones(images.numel() // 8, 8, dtype=torch.bool), None)
    expected = torch.logsumexp(marginals.view(len(images), -1), 0) - np.log(len(images))
    torch.testing.assert_close(terms.log_prob, expected, atol=1e-10, rtol=0)
