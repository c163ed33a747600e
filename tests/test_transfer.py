"""Transfer from a small to a larger supercell, checked against Kaufman's exact free energy."""

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lattherm.cli import app
from lattherm.exact.kaufman import ising_thermo
from lattherm.io import CheckpointError
from lattherm.models import build_model
from lattherm.systems import build_system
from lattherm.training import TrainConfig, load_trained_model, train
from lattherm.transfer import transfer


def ising(L, **kw):
    return build_system({"model": "ising", "lattice": "square", "train_size": [L, L], **kw})


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


TINY = {"kind": "transformer", "d_model": 16, "n_head": 2, "n_layer": 1, "n_freq": 1, "attention_shells": 1}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A tiny transformer trained briefly on 3x3 Ising at T = 5, through the CLI."""
    d = tmp_path_factory.mktemp("small")
    args = ["neural", "train", "--system", str(write_yaml(d / "system.yaml", {"model": "ising", "lattice": "square",
                                                                             "train_size": [3, 3]})),
            "--model", str(write_yaml(d / "model.yaml", TINY)),
            "--training", str(write_yaml(d / "training.yaml", {"steps": 150, "batch_size": 64, "lr": 0.003,
                                                              "anneal": 0.9, "temperature": 5.0})),
            "--out-dir", str(d / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return d


def test_transfer_to_larger_lattice_matches_kaufman(small_run):
    big = ising(6)
    out = transfer(small_run / "run" / "checkpoint.pt", big, n_samples=4000, mcmc_chains=32, mcmc_steps=60,
                   progress=False)
    exact = ising_thermo(6, 6, [1 / 5.0]).iloc[0]
    assert (out["source_sites"], out["target_sites"], out["temperature"]) == (9, 36, 5.0)
    assert 0.05 < out["ess"] <= 1.0
    assert abs(out["free_energy"] - exact.free_energy) < 4 * out["free_energy_err"]
    assert abs(out["energy"] - exact.energy) < 4 * out["energy_err"]
    assert 0 < out["acceptance"] <= 1


def test_transfer_keeps_trained_weights(small_run):
    """The transferred model is the trained one, not a fresh initialisation: same weights,
    and its conditionals on the big lattice differ from the untrained (uniform) start."""
    big = ising(6)
    moved = load_trained_model(small_run / "run" / "checkpoint.pt", big, same_size=False).model
    small = load_trained_model(small_run / "run" / "checkpoint.pt", ising(3)).model
    for (name, a), b in zip(moved.state_dict().items(), small.state_dict().values()):
        assert torch.equal(a, b), name
    x = torch.randint(0, 2, (8, 36), generator=torch.Generator().manual_seed(0))
    uniform = -36 * torch.log(torch.tensor(2.0, dtype=torch.float64))
    assert (moved.log_prob(x) - uniform).abs().max() > 0.1


def test_cli_transfer_with_finetuning(small_run, tmp_path):
    big = write_yaml(tmp_path / "big.yaml", {"model": "ising", "lattice": "square", "train_size": [6, 6]})
    out = tmp_path / "transfer.csv"
    result = CliRunner().invoke(app, ["neural", "sample", "--checkpoint", str(small_run / "run" / "checkpoint.pt"),
                                      "--system", str(big), "--finetune-steps", "5", "--samples", "3000",
                                      "--mcmc-steps", "40", "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(out).iloc[0]
    exact = ising_thermo(6, 6, [1 / 5.0]).iloc[0]
    assert row.finetune_steps == 5 and row.target_sites == 36
    assert abs(row.free_energy - exact.free_energy) < 4 * row.free_energy_err


def test_transfer_refuses_incompatible_targets(tmp_path):
    system = ising(2)
    torch.manual_seed(0)
    train(build_model({"kind": "made", "hidden": 8}, system.lattice), system,
          TrainConfig(steps=2, batch_size=8, temperature=3.0), tmp_path, progress=False)
    with pytest.raises(ValueError, match="size-specific"):
        transfer(tmp_path / "checkpoint.pt", ising(3), n_samples=10, progress=False)
    alloy = ising(3)
    alloy.species = ["Cu", "Au"]  # an alloy on the same lattice
    with pytest.raises(CheckpointError, match="species"):
        transfer(tmp_path / "checkpoint.pt", alloy, n_samples=10, progress=False)
    with pytest.raises(ValueError, match="finetune_steps"):
        transfer(tmp_path / "checkpoint.pt", ising(2), finetune_steps=-1, progress=False)


@pytest.mark.slow
def test_transformer_4x4_to_8x8_matches_kaufman(tmp_path):
    small, big = ising(4), ising(8)
    torch.manual_seed(0)
    model = build_model({"kind": "transformer", "d_model": 32, "n_head": 4, "n_layer": 1, "n_freq": 1,
                         "attention_shells": 2}, small.lattice)
    train(model, small, TrainConfig(steps=200, batch_size=128, lr=0.003, anneal=0.95, temperature=4.0), tmp_path,
          progress=False)
    out = transfer(tmp_path / "checkpoint.pt", big, finetune_steps=30, n_samples=4000, mcmc_steps=50, progress=False)
    exact = ising_thermo(8, 8, [0.25]).iloc[0]
    assert out["ess"] > 0.2
    assert abs(out["free_energy"] - exact.free_energy) < 4 * out["free_energy_err"]
    assert abs(out["free_energy"] - exact.free_energy) / abs(exact.free_energy) < 2e-3
    assert abs(out["energy"] - exact.energy) < 4 * out["energy_err"]
