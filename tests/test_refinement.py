"""MC refinement and self-distillation (training ``refine_sweeps``): the refinement sweeps keep the
Boltzmann distribution of exact samples (enumeration), training with them reaches the exact F,
resumes bit for bit, and bad settings are one line naming the field."""

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import chi2

from lattherm.config import ConfigError, check_workflow_config
from lattherm.exact.enumeration import configurations, enumerate_energies, exact_thermo
from lattherm.mcmc.moves import MOVES
from lattherm.mcmc.samplers import refine
from lattherm.models import build_model
from lattherm.sampling import evaluate
from lattherm.schema import schema
from lattherm.systems import build_system
from lattherm.training import TrainConfig, train
from lattherm.training.variational import TrainingSettingsError

TINY = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "tiny.yaml").read_text())


def system_3x3(**kw):
    return build_system({"model": "ising", "lattice": "square", "train_size": [3, 3], **kw})


# Each system's own move: colour-class heat bath (Ising, EA), random-scan Metropolis (SK, and an
# Ising in a field, whose SemiGrand has no interaction graph), sequential canonical swaps, Wolff.
SYSTEMS = {
    "ising flip": {"model": "ising", "lattice": "square", "train_size": [3, 3]},
    "ising field flip": {"model": "ising", "lattice": "square", "train_size": [3, 3], "dmu": 0.3},
    "edwards_anderson flip": {"model": "edwards_anderson", "lattice": "square", "train_size": [3, 3]},
    "sherrington_kirkpatrick flip": {"model": "sherrington_kirkpatrick", "train_size": [9]},
    "canonical swap": {"model": "ising", "lattice": "square", "train_size": [3, 3], "ensemble": "canonical",
                       "concentration": 4 / 9},
    "ising wolff": {"model": "ising", "lattice": "square", "train_size": [3, 3],
                    "mcmc": {"temperatures": [2.0], "move": "wolff"}},
}


@pytest.mark.parametrize("name", SYSTEMS)
def test_refinement_keeps_exact_samples_exact(name):
    """Exact samples at two betas (rows at their own beta), refined by 3 sweeps: the histogram of
    (energy, n_ones) still matches enumeration (chi-square), while most rows have moved."""
    system = build_system(SYSTEMS[name])
    energies, ones = enumerate_energies(system.hamiltonian)
    allowed = np.ones_like(ones, dtype=bool) if system.n_ones is None else ones == system.n_ones
    gen = torch.Generator().manual_seed(1)
    n_rows, betas = 20000, (0.3, 0.6)
    starts, probabilities = [], []
    for beta in betas:
        log_p = np.where(allowed, -beta * (energies - energies[allowed].min()), -np.inf)
        p = np.exp(log_p) / np.exp(log_p).sum()
        probabilities.append(p)
        index = torch.multinomial(torch.as_tensor(p), n_rows, replacement=True, generator=gen)
        starts.append(configurations(system.n_sites, 0, 1 << system.n_sites)[index])
    x = torch.cat(starts)
    beta_rows = torch.as_tensor(np.repeat(betas, n_rows))
    move = MOVES[system.config.move](system.hamiltonian)
    refined = refine(move, x, beta_rows, 3, gen)
    assert torch.equal(x, torch.cat(starts))  # the input is left as it was
    moved = (refined != x).any(dim=1).double()
    assert moved[:n_rows].mean() > 0.5 and moved[n_rows:].mean() > 0.05, moved.mean()
    # classes (energy, n_ones); those expected fewer than 5 times pooled into one
    labels = np.round(energies, 6) * 1000 + ones
    index = (refined * (1 << torch.arange(system.n_sites))).sum(1).numpy()
    for k, p in enumerate(probabilities):
        classes, inverse = np.unique(labels, return_inverse=True)
        expected = np.bincount(inverse, weights=p * n_rows, minlength=len(classes))
        observed = np.bincount(inverse[index[k * n_rows:(k + 1) * n_rows]], minlength=len(classes))
        rare = expected < 5
        expected = np.append(expected[~rare], expected[rare].sum())
        observed = np.append(observed[~rare], observed[rare].sum())
        keep = expected > 0
        stat = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
        assert chi2.sf(stat, keep.sum() - 1) > 1e-4, (name, betas[k], stat, keep.sum())


def test_training_with_refinement_reaches_the_exact_free_energy():
    """3x3 Ising at low temperature (beta = 0.6), 2 sweeps of heat bath per step, weight 1."""
    system = system_3x3()
    torch.manual_seed(0)
    model = build_model({"kind": "made", "hidden": 32, "depth": 2}, system.lattice)
    result = train(model, system, TrainConfig(steps=250, batch_size=256, lr=0.01, anneal=0.98, temperature=1 / 0.6,
                                              refine_sweeps=2), progress=False)
    exact = exact_thermo(system.hamiltonian, [0.6]).free_energy[0]
    est = evaluate(result.model, system, 1 / 0.6, n_samples=20000, mcmc_steps=20)
    assert est["ess"] > 0.95
    assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]
    assert abs(est["free_energy"] - exact) / abs(exact) < 2e-4


# The refinement draws from the run's generator (shards: 1) or the shard's stream (shards: 2):
# resume is exact with a fixed move, a move rebuilt per step on a drawn dmu, canonical swaps with
# a drawn composition (0 and 6 of 6 sites: nothing to refine), Wolff under z2_symmetric.
@pytest.mark.parametrize("kind, system_spec, conditions, extra", [
    ("made", {}, {"temperature": 2.0}, {}),
    ("made", {}, {"temperature": 2.0, "shards": 2}, {}),
    ("made", {"dmu": 0.2}, {"temperature_range": [1.5, 3.0], "dmu_range": [-0.5, 0.5]}, {"physics_logits": True}),
    ("transformer", {"ensemble": "canonical", "concentration": 0.5},
     {"temperature_range": [1.5, 3.0], "concentration_range": [0.0, 1.0]}, {}),
    ("made", {"mcmc": {"temperatures": [2.0], "move": "wolff"}}, {"temperature": 2.0}, {"z2_symmetric": True}),
])
def test_resume_with_refinement_is_bit_for_bit(tmp_path, kind, system_spec, conditions, extra):
    system = build_system({"model": "ising", "lattice": "square", "train_size": [2, 3], **system_spec})
    n_cond = sum(key.endswith("_range") for key in conditions)
    spec = ({"kind": "made", "hidden": 16, "n_cond": n_cond} if kind == "made" else
            {"kind": "transformer", "d_model": 16, "n_head": 2, "n_layer": 1, "n_freq": 1, "n_cond": n_cond})
    spec.update(extra)
    k = 4

    def config(steps, sweeps=2):
        return TrainConfig(steps=steps, batch_size=16, lr=0.01, anneal=0.9, checkpoint_every=k,
                           refine_sweeps=sweeps, refine_weight=0.5, **conditions)

    torch.manual_seed(0)
    whole = train(build_model(spec, system.lattice), system, config(2 * k), tmp_path / "whole", progress=False)
    torch.manual_seed(0)
    train(build_model(spec, system.lattice), system, config(k), tmp_path / "split", progress=False)
    torch.manual_seed(123)  # a different fresh model and global RNG: the checkpoint must win
    resumed = train(build_model(spec, system.lattice), system, config(2 * k), tmp_path / "split", progress=False)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    cols = [c for c in whole.log.columns if c != "wall_time"]
    pd.testing.assert_frame_equal(whole.log[cols], resumed.log[cols], check_exact=True)
    # and the refinement took part: the same run without it trains another model
    torch.manual_seed(0)
    plain = train(build_model(spec, system.lattice), system, config(2 * k, sweeps=0), progress=False)
    assert not plain.log.loss.equals(whole.log.loss)


@pytest.mark.parametrize("settings, expected", [
    ({"refine_sweeps": -1}, "refine_sweeps = -1 must be an integer >= 0"),
    ({"refine_sweeps": 1.5}, "refine_sweeps = 1.5"),
    ({"refine_sweeps": True}, "refine_sweeps = True"),
    ({"refine_weight": 0.0}, "refine_weight = 0.0 must be a positive number"),
    ({"refine_weight": float("nan")}, "refine_weight = nan"),
    ({"refine_weight": None}, "refine_weight = None"),
    ({"refine_weight": "1"}, "refine_weight = '1'"),
])
def test_bad_refinement_settings_are_named(settings, expected):
    with pytest.raises(TrainingSettingsError) as info:
        TrainConfig.from_dict({"temperature": 2.0, **settings})
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_move_that_cannot_sample_the_training_energy_is_refused():
    """Wolff needs h = 0; a drawn dmu adds a field."""
    system = build_system({"model": "ising", "lattice": "square", "train_size": [2, 3],
                           "mcmc": {"temperatures": [2.0], "move": "wolff"}})
    model = build_model({"kind": "made", "hidden": 16, "n_cond": 2}, system.lattice)
    config = TrainConfig(steps=1, batch_size=16, temperature_range=[1.5, 3.0], dmu_range=[-0.5, 0.5], refine_sweeps=1)
    with pytest.raises(TrainingSettingsError, match=r"^training refine_sweeps = 1: the system's mcmc.move 'wolff' "
                                                    r"cannot refine its samples: Wolff updates need"):
        train(model, system, config, progress=False)


def test_workflow_training_section_matches_the_dataclass():
    """The schema's training defaults are TrainConfig's, and a bad value names training.refine_*."""
    training = schema()["properties"]["training"]["properties"]
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert {"refine_sweeps", "refine_weight"} <= set(training)
    for key, value in training.items():
        if "default" in value:
            assert value["default"] == defaults[key], key
    config = copy.deepcopy(TINY)
    check_workflow_config(config)
    assert config["training"]["refine_sweeps"] == 0 and config["training"]["refine_weight"] == 1.0
    for key, value in (("refine_sweeps", -1), ("refine_weight", 0)):
        config = copy.deepcopy(TINY)
        config["training"][key] = value
        with pytest.raises(ConfigError, match=f"training.{key}"):
            check_workflow_config(config)
