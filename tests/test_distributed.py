"""Data-parallel training: `lattherm neural train` under torchrun (2 processes, gloo on the CPU)
trains the model that one process trains with the same global batch, shards and seed, and
resumes exactly. Each shard of a step's batch is drawn from its own stream (seed, step, shard),
so the batch does not depend on which process draws it; only the order of the gradient sum does."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lattherm.cli import app
from lattherm.io import load_checkpoint
from lattherm.training import TrainConfig
from lattherm.training.variational import TrainingSettingsError

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")

# The transformer exercises every random draw of a step: the samples, and the orders and
# prefixes of the marginalization penalty, taken on a fraction of each shard's rows.
MODEL = {"kind": "transformer", "d_model": 16, "n_head": 2, "n_layer": 1, "n_freq": 1}
TRAINING = {"batch_size": 32, "shards": 2, "lr": 0.01, "anneal": 0.9, "checkpoint_every": 3, "temperature": 2.5,
            "device": "cpu"}


def setup(tmp_path: Path, steps: int, **training) -> list[str]:
    (tmp_path / "system.yaml").write_text(yaml.safe_dump({  # mcmc: the ladder of training by example
        "model": "ising", "lattice": "square", "train_size": [3, 3], "h": 0.2,
        "mcmc": {"temperatures": [5.0, 2.5], "chains": 4, "sweeps": 200, "burn_in": 10}}))
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(MODEL))
    (tmp_path / f"training{steps}.yaml").write_text(yaml.safe_dump({**TRAINING, **training, "steps": steps}))
    return ["neural", "train", "--system", str(tmp_path / "system.yaml"), "--model", str(tmp_path / "model.yaml"),
            "--training", str(tmp_path / f"training{steps}.yaml")]


def torchrun(args: list[str], out_dir: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2", "--no-python", "lattherm", *args,
                           "--out-dir", str(out_dir)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def weights(out_dir: Path) -> dict:
    return load_checkpoint(out_dir / "checkpoint.pt")["model_state"]


def test_two_processes_train_what_one_does_and_resume_exactly(tmp_path):
    steps = 6
    args = setup(tmp_path, steps)
    one = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    torchrun(args, tmp_path / "two")
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a.keys() == b.keys()
    for name in a:  # float32 gradients summed in another order: a few ulps, through 6 Adam steps
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    log_one, log_two = pd.read_csv(tmp_path / "one" / "log.csv"), pd.read_csv(tmp_path / "two" / "log.csv")
    assert list(log_two.step) == list(range(1, steps + 1))
    # the losses and estimates of the same batches: F_q and ESS, of the sampled rows, agree closely
    for column in ("loss", "F_q", "F_IS", "ESS", "consistency_error", "beta"):
        pd.testing.assert_series_equal(log_two[column], log_one[column], rtol=1e-4, atol=1e-6)
    assert not (tmp_path / "two" / ".progress").exists()  # rank 0 removed its progress files

    # resume under torchrun: stop at step 3 (a checkpoint), extend to 6: the same run bit for bit
    torchrun(setup(tmp_path, 3), tmp_path / "split")
    torchrun(args, tmp_path / "split")
    for name, value in weights(tmp_path / "two").items():
        assert torch.equal(value, weights(tmp_path / "split")[name]), name
    log_split = pd.read_csv(tmp_path / "split" / "log.csv")
    cols = [c for c in log_two.columns if c != "wall_time"]
    pd.testing.assert_frame_equal(log_split[cols], log_two[cols], check_exact=True)


@pytest.mark.parametrize("extra", [{"refine_sweeps": 2}, {"example_sweeps": 2}])
def test_two_processes_refine_or_learn_by_example(tmp_path, extra):
    """MC refinement (refine_sweeps) draws from each shard's stream; training by example
    (example_sweeps) runs the same tempering on every process and scores its examples once per
    process, each process its shards' share: two processes train what one does."""
    args = setup(tmp_path, 4, **extra)
    one = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    torchrun(args, tmp_path / "two")
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    log_one, log_two = pd.read_csv(tmp_path / "one" / "log.csv"), pd.read_csv(tmp_path / "two" / "log.csv")
    pd.testing.assert_series_equal(log_two["loss"], log_one["loss"], rtol=1e-4, atol=1e-6)


def test_shards_must_divide_the_batch():
    with pytest.raises(TrainingSettingsError, match="batch_size = 30 must be a multiple of shards = 4"):
        TrainConfig(temperature=2.0, batch_size=30, shards=4)
