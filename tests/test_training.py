"""Variational training against exact free energies; exact resume; checkpoint errors."""

import json
import math
import os
import signal

import pandas as pd
import pytest
import torch

from lattherm.exact.enumeration import exact_thermo
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.io import CheckpointError, load_checkpoint, save_checkpoint
from lattherm.models import build_model
from lattherm.sampling import evaluate
from lattherm.systems import build_system
from lattherm.training import TrainConfig, load_trained_model, train

T_C = 1.0 / BETA_C


def ising(size, **kw):
    return build_system({"model": "ising", "lattice": "square", "train_size": list(size), **kw})


def made(system, **kw):
    torch.manual_seed(0)
    return build_model({"kind": "made", "hidden": 32, "depth": 2, **kw}, system.lattice)


def test_3x3_ising_at_beta_c_matches_enumeration():
    system = ising((3, 3))
    model = made(system)
    config = TrainConfig(steps=300, batch_size=256, lr=0.01, anneal=0.98, temperature=T_C)
    result = train(model, system, config, progress=False)
    log, model = result.log, result.model  # the spin-flip mixture (z2_symmetric: auto on a symmetric system)
    exact = exact_thermo(system.hamiltonian, [BETA_C]).free_energy[0]
    # the variational free energy is an upper bound that training pushes down to F
    assert log.F_q.iloc[-1] > exact - 0.05
    assert abs(log.F_q.iloc[-20:].mean() - exact) / abs(exact) < 2e-3
    est = evaluate(model, system, T_C, n_samples=20000, mcmc_steps=50)
    assert est["ess"] > 0.98
    assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]
    assert abs(est["free_energy"] - exact) / abs(exact) < 1e-4
    assert est["variational_free_energy"] >= est["free_energy"] - 4 * est["variational_free_energy_err"]


def test_4x4_ising_at_beta_c_reaches_relative_error_1e4():
    system = ising((4, 4))
    model = made(system, hidden=64)
    model = train(model, system, TrainConfig(steps=1000, batch_size=512, lr=0.005, anneal=0.98, temperature=T_C),
                  progress=False).model
    exact = ising_thermo(4, 4, [BETA_C]).free_energy[0]
    est = evaluate(model, system, T_C, n_samples=50000, mcmc_steps=50)
    assert abs(est["free_energy"] - exact) / abs(exact) < 1e-4
    assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]


def test_bfloat16_training():
    system = ising((2, 3))
    model = made(system)
    model = train(model, system, TrainConfig(steps=150, batch_size=128, lr=0.01, anneal=0.9, temperature=2.5,
                                             dtype="bfloat16"), progress=False).model
    exact = exact_thermo(system.hamiltonian, [0.4]).free_energy[0]
    est = evaluate(model, system, 2.5, n_samples=8000, mcmc_steps=20)
    assert est["ess"] > 0.8
    assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]


def test_temperature_conditioned_model():
    system = ising((2, 3), h=0.3)
    model = made(system, n_cond=1)
    result = train(model, system, TrainConfig(steps=500, batch_size=256, lr=0.01, anneal=0.9,
                                              temperature_range=[2.0, 4.0]), progress=False)
    assert result.conditioning.variables == ("beta",) and result.conditioning.scales == {"beta": 0.5}
    for t in (2.0, 3.0, 4.0):
        exact = exact_thermo(system.hamiltonian, [1 / t]).free_energy[0]
        est = evaluate(model, system, t, n_samples=8000, conditioning=result.conditioning, mcmc_steps=20)
        assert est["ess"] > 0.85
        assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]


def test_canonical_training():
    system = ising((2, 3), ensemble="canonical", concentration=0.5)
    model = made(system)
    result = train(model, system, TrainConfig(steps=200, batch_size=128, lr=0.01, anneal=0.9, temperature=1.5),
                   progress=False)
    log, model = result.log, result.model
    exact = exact_thermo(system.hamiltonian, [1 / 1.5], n_ones=3)
    est = evaluate(model, system, 1.5, n_samples=8000, mcmc_steps=100)
    assert est["ess"] > 0.9
    assert abs(est["free_energy"] - exact.free_energy[0]) < 4 * est["free_energy_err"]
    assert abs(est["energy"] - exact.energy[0]) < 4 * est["energy_err"]
    assert math.isnan(log.consistency_error.iloc[-1])  # MADE has no marginal network


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# The conditioned runs draw beta, dmu and n_ones per batch: those draws must resume exactly too.
# physics_logits (beta annealed, or read from cond with dmu) and z2_symmetric: auto resume exactly too.
PHYSICS_Z2 = {"physics_logits": True, "z2_symmetric": "auto"}


@pytest.mark.parametrize("kind, system_spec, conditions, extra", [
    ("made", {}, {"temperature": 2.0}, {}),
    ("transformer", {}, {"temperature": 2.0}, {}),
    ("made", {"dmu": 0.2}, {"temperature_range": [1.5, 3.0], "dmu_range": [-0.5, 0.5]}, {}),
    ("transformer", {"ensemble": "canonical", "concentration": 0.5},
     {"temperature_range": [1.5, 3.0], "concentration_range": [0.1, 0.9]}, {}),
    ("made", {}, {"temperature": 2.0}, PHYSICS_Z2),
    ("transformer", {}, {"temperature": 2.0}, PHYSICS_Z2),
    ("made", {"dmu": 0.2}, {"temperature_range": [1.5, 3.0], "dmu_range": [-0.5, 0.5]}, PHYSICS_Z2),
])
def test_resume_is_bit_for_bit(tmp_path, kind, system_spec, conditions, extra):
    system = ising((2, 3), **system_spec)
    n_cond = len(conditions) - ("temperature" in conditions)
    spec = ({"kind": "made", "hidden": 16, "n_cond": n_cond} if kind == "made" else
            {"kind": "transformer", "d_model": 16, "n_head": 2, "n_layer": 1, "n_freq": 1, "n_cond": n_cond})
    spec.update(extra)
    k = 4

    def config(steps):
        return TrainConfig(steps=steps, batch_size=16, lr=0.01, anneal=0.9, checkpoint_every=k, **conditions)

    torch.manual_seed(0)
    whole = train(build_model(spec, system.lattice), system, config(2 * k), tmp_path / "whole", progress=False)
    torch.manual_seed(0)
    train(build_model(spec, system.lattice), system, config(k), tmp_path / "split", progress=False)
    torch.manual_seed(123)  # a different fresh model and global RNG: the checkpoint must win
    resumed = train(build_model(spec, system.lattice), system, config(2 * k), tmp_path / "split", progress=False)

    for name, value in _params(whole.model).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    cols = [c for c in whole.log.columns if c != "wall_time"]
    pd.testing.assert_frame_equal(whole.log[cols], resumed.log[cols], check_exact=True)
    on_disk = pd.read_csv(tmp_path / "split" / "log.csv")
    assert list(on_disk.step) == list(range(1, 2 * k + 1))
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert a["step"] == b["step"] == 2 * k
    assert torch.equal(a["rng"]["generator"], b["rng"]["generator"])


def test_cosine_learning_rate_decays_to_lr_final_and_resumes(tmp_path, monkeypatch):
    """lr_final: each step's lr follows the half cosine from lr (first step) to lr_final (last),
    and a run stopped by SIGTERM in step 5 and resumed trains the same model as one run."""
    from lattherm.training import variational

    system = ising((2, 3))

    def run(out_dir):
        torch.manual_seed(0)
        config = TrainConfig(steps=9, batch_size=16, lr=0.01, lr_final=0.001, anneal=0.9, checkpoint_every=4,
                             temperature=2.0)
        return train(build_model({"kind": "made", "hidden": 16}, system.lattice), system, config, out_dir,
                     progress=False)

    whole = run(tmp_path / "whole")
    done = (whole.log.step - 1) / 8
    expected = 0.001 + 0.009 * 0.5 * (1 + (math.pi * done).map(math.cos))
    assert whole.log.lr.iloc[0] == pytest.approx(0.01, rel=1e-12) and whole.log.lr.iloc[-1] == pytest.approx(0.001, rel=1e-12)
    assert whole.log.lr.to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)

    calls = []

    def terminate_in_step_5(energy, log_q, beta, weights=variational.log_weights):
        calls.append(None)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return weights(energy, log_q, beta)

    monkeypatch.setattr(variational, "log_weights", terminate_in_step_5)
    with pytest.raises(SystemExit):
        run(tmp_path / "split")
    monkeypatch.undo()
    resumed = run(tmp_path / "split")
    for name, value in _params(whole.model).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    cols = [c for c in whole.log.columns if c != "wall_time"]
    pd.testing.assert_frame_equal(whole.log[cols], resumed.log[cols], check_exact=True)


def test_checkpoint_errors(tmp_path):
    system = ising((2, 3))
    config = TrainConfig(steps=2, batch_size=8, checkpoint_every=1, temperature=2.0)
    train(made(system), system, config, tmp_path, progress=False)
    ckpt = tmp_path / "checkpoint.pt"

    with pytest.raises(CheckpointError, match="settings differ in \\['lr'\\]"):
        train(made(system), system, TrainConfig(steps=4, batch_size=8, lr=0.1, temperature=2.0), tmp_path,
              progress=False)
    with pytest.raises(CheckpointError, match="model"):
        train(made(system, hidden=8), system, config, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="beyond"):
        train(made(system), system, TrainConfig(steps=1, batch_size=8, temperature=2.0), tmp_path, progress=False)
    other_species = build_system({"model": "ising", "lattice": "square", "train_size": [2, 3]})
    other_species.species = ["Cu", "Au"]  # an alloy on the same cell
    with pytest.raises(CheckpointError, match="species"):
        load_trained_model(ckpt, other_species)
    cubic = build_system({"model": "ising", "lattice": "simple_cubic", "train_size": [1, 2, 3]})
    with pytest.raises(CheckpointError, match="lattice_kind"):
        load_trained_model(ckpt, cubic)
    with pytest.raises(ValueError, match="size-specific"):
        load_trained_model(ckpt, ising((3, 3)), same_size=False)
    with pytest.raises(CheckpointError, match="repeats"):
        load_trained_model(ckpt, ising((3, 3)))
    # a checkpoint that loads restores the same model
    restored = load_trained_model(ckpt, system).model
    x = torch.randint(0, 2, (5, 6))
    trained = train(made(system), system, config, tmp_path, progress=False).model
    assert torch.equal(restored.log_prob(x), trained.log_prob(x))

    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_trained_model(ckpt, system)
    save_checkpoint(ckpt, {"step": 3})
    with pytest.raises(CheckpointError, match="not a lattherm"):
        load_trained_model(ckpt, system)


def test_bad_training_settings():
    with pytest.raises(ValueError, match="exactly one of temperature"):
        TrainConfig()
    with pytest.raises(ValueError, match="anneal"):
        TrainConfig(temperature=1.0, anneal=1.0)
    with pytest.raises(ValueError, match="temperature_range"):
        TrainConfig(temperature_range=[3.0, 2.0])
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"temperature": 1.0, "epochs": 3})
    system = ising((2, 3))
    with pytest.raises(ValueError, match="n_cond"):
        train(made(system), system, TrainConfig(temperature_range=[1.0, 2.0], steps=1), progress=False)


def test_cli_train_resume_and_sample(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from lattherm.cli import app

    (tmp_path / "system.yaml").write_text(yaml.safe_dump({"model": "ising", "lattice": "square", "train_size": [2, 3]}))
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"kind": "made", "hidden": 16}))
    training = {"steps": 100, "batch_size": 128, "lr": 0.01, "anneal": 0.9, "checkpoint_every": 50,
                "temperature": 2.5}
    (tmp_path / "training.yaml").write_text(yaml.safe_dump(training))
    args = ["neural", "train", "--system", str(tmp_path / "system.yaml"), "--model", str(tmp_path / "model.yaml"),
            "--training", str(tmp_path / "training.yaml"), "--out-dir", str(tmp_path / "run")]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # extending the run resumes from the checkpoint
    (tmp_path / "training.yaml").write_text(yaml.safe_dump({**training, "steps": 150}))
    assert runner.invoke(app, args).exit_code == 0
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert list(log.step) == list(range(1, 151))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final"]["step"] == 150 and summary["model"]["kind"] == "made"
    # changed settings are refused with a clear message
    (tmp_path / "training.yaml").write_text(yaml.safe_dump({**training, "steps": 200, "lr": 0.1}))
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1 and "settings differ in ['lr']" in str(bad.exception)

    out = tmp_path / "estimates.csv"
    result = runner.invoke(app, ["neural", "sample", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
                                 "--system", str(tmp_path / "system.yaml"), "--samples", "4000",
                                 "--temperatures", "2.5,3.5", "--mcmc-steps", "50", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    system = ising((2, 3))
    exact = exact_thermo(system.hamiltonian, [1 / 2.5, 1 / 3.5])
    assert list(table.temperature) == [2.5, 3.5]
    assert (abs(table.free_energy - exact.free_energy) < 4 * table.free_energy_err).all()
    assert (abs(table.energy - exact.energy) < 4 * table.energy_err).all()
    assert {"ess", "variational_free_energy", "heat_capacity", "acceptance", "abs_magnetization", "system"} <= set(table.columns)


@pytest.mark.parametrize("settings, expected", [
    ({"temperature": True}, "temperature = True"),
    ({"temperature": 1e400}, "temperature = inf"),
    ({"temperature": float("nan")}, "temperature = nan"),
    ({"temperature": "2.0"}, "temperature = '2.0'"),
    ({"temperature_range": [0.0, 2.0]}, "temperature_range = [0.0, 2.0]"),
    ({"temperature_range": [2.0, True]}, "temperature_range = [2.0, True]"),
    ({"temperature": 2.0, "steps": 10.5}, "steps = 10.5"),
    ({"temperature": 2.0, "batch_size": 1}, "batch_size = 1"),
    ({"temperature": 2.0, "lr": float("inf")}, "lr = inf"),
    ({"temperature": 2.0, "lr": 0.01, "lr_final": 0.1}, "lr_final = 0.1"),
    ({"temperature": 2.0, "lr_final": 0.0}, "lr_final = 0.0"),
    ({"temperature": 2.0, "dmu_range": [0.1, float("nan")]}, "dmu_range = [0.1, nan]"),
])
def test_training_settings_of_the_wrong_type_or_range_are_named(settings, expected):
    from lattherm.training.variational import TrainingSettingsError

    with pytest.raises(TrainingSettingsError) as info:
        TrainConfig.from_dict(settings)
    assert expected in str(info.value)
