"""Faults lose nothing: a checkpoint names its Hamiltonian and is refused on another one, corrupt
or foreign checkpoints are refused with one line, and a killed or terminated run resumes bit
for bit (from its progress directory, which a workflow manager does not delete)."""

import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ase.build import bulk
from icet import ClusterExpansion, ClusterSpace

from lattherm.ce.storage import write_cluster_expansion
from lattherm.cli import main
from lattherm.io import CheckpointError, load_checkpoint, save_checkpoint
from lattherm.models import build_model
from lattherm.systems import build_system
from lattherm.training import TrainConfig, load_trained_model, train, variational

CLI = [sys.executable, "-c", "from lattherm.cli import main; main()"]
MADE = {"kind": "made", "hidden": 8}
TINY_TRANSFORMER = {"kind": "transformer", "d_model": 8, "n_head": 2, "n_layer": 1, "n_freq": 1}
TRAINING = {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "temperature": 2.0}
SQUARE = {"lattice": "square", "train_size": [2, 3]}
BIGGER = {"square": "4x6", "fcc": "2x2x3"}  # cells that repeat a system's train_size, for transfer
SYSTEMS = {
    "ising": {"model": "ising", **SQUARE},
    "ising_j2": {"model": "ising", "J": 2.0, **SQUARE},
    "ea1": {"model": "edwards_anderson", "coupling_seed": 1, **SQUARE},
    "ea2": {"model": "edwards_anderson", "coupling_seed": 2, **SQUARE},
    "fcc": {"model": "ising", "lattice": "fcc", "train_size": [1, 2, 3]},
    # Species Cu and Au (from its CE file) on the fcc cell of the fcc Ising system (down, up).
    "cuau": {"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "train_size": [1, 2, 3]},
}


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def fit(system, out_dir, spec=MADE, **training):
    """A few steps of training on ``system``, writing out_dir/checkpoint.pt."""
    torch.manual_seed(0)
    train(build_model(spec, system.lattice), system, TrainConfig.from_dict({**TRAINING, **training}), out_dir,
          progress=False)
    return out_dir / "checkpoint.pt"


@pytest.fixture(scope="module")
def ce():
    cs = ClusterSpace(bulk("Au", "fcc", a=3.8), cutoffs=[5.0, 4.0], chemical_symbols=["Cu", "Au"])
    return ClusterExpansion(cs, np.random.default_rng(0).normal(scale=0.02, size=len(cs)))


@pytest.fixture(scope="module")
def files(tmp_path_factory, ce):
    """System, model and training YAML files and a trained checkpoint per system."""
    d = tmp_path_factory.mktemp("faults")
    paths = {name: write_yaml(d / f"{name}.yaml", spec) for name, spec in SYSTEMS.items()}
    paths["made"] = write_yaml(d / "made.yaml", MADE)
    paths["transformer"] = write_yaml(d / "transformer.yaml", TINY_TRANSFORMER)
    paths["training"] = write_yaml(d / "training.yaml", TRAINING)
    paths["alloys"] = d / "ce"
    paths["alloys"].mkdir()
    write_cluster_expansion(ce, paths["alloys"] / "cuau.json")
    for name in ("ising", "ising_j2", "ea1", "fcc"):
        paths[f"{name}_ckpt"] = fit(build_system(SYSTEMS[name]), d / f"run_{name}")
    paths["cuau_ckpt"] = fit(build_system(SYSTEMS["cuau"], ce_file=paths["alloys"] / "cuau.json"), d / "run_cuau",
                             temperature=1000.0)  # kelvin
    return paths


def run_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    """``lattherm ...`` in a fresh interpreter: stderr is what a user sees."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, **kwargs)


def cli_in_process(capsys, *args) -> tuple[int, str]:
    """``lattherm ...`` through the console entry point in this process (cheaper than a
    subprocess; an exception that is not a user error escapes and fails the test)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err


def assert_one_line_error(status, stderr, *fragments):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status not in (0, None) and "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], lines[0]


def train_args(files, system, out_dir, model="made"):
    return ["neural", "train", "--system", files[system], "--model", files[model], "--training", files["training"],
            "--out-dir", out_dir]


def sample_args(checkpoint, system_file, tmp_path):
    return ["neural", "sample", "--checkpoint", checkpoint, "--system", system_file, "--samples", 8,
            "--mcmc-chains", 2, "--mcmc-steps", 2, "--out", tmp_path / "estimates.csv"]


def transfer_args(checkpoint, system_file, tmp_path, size=None):
    return ["neural", "sample", "--checkpoint", checkpoint, "--system", system_file,
            *(["--size", size] if size else []), "--samples", 8, "--mcmc-chains", 2, "--mcmc-steps", 2,
            "--out", tmp_path / "transfer.csv"]


# -- the Hamiltonian ---------------------------------------------------------------------------
def test_resuming_a_J2_checkpoint_on_J1_is_one_line_error(files, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(files["ising_j2_ckpt"].parent, run)
    result = run_cli(*train_args(files, "ising", run))
    assert_one_line_error(result.returncode, result.stderr, run / "checkpoint.pt", "J = 2.0", "has 1.0")
    assert load_checkpoint(run / "checkpoint.pt")["system"]["hamiltonian"]["J"] == 2.0  # untouched


def test_other_hamiltonians_are_refused(files, tmp_path, capsys):
    cases = [(files["ea1_ckpt"], "ea2", ["seed = 1", "has 2"]),  # coupling_seed, recorded as the Hamiltonian's seed
             (files["ising_ckpt"], "ea1", ["model = 'ising'", "'edwards_anderson'"]),
             (files["ising_ckpt"], "ising_j2", ["J = 1.0", "has 2.0"])]
    for checkpoint, system, fragments in cases:
        status, err = cli_in_process(capsys, *sample_args(checkpoint, files[system], tmp_path))
        assert_one_line_error(status, err, checkpoint, *fragments)
    status, err = cli_in_process(capsys, *transfer_args(files["ising_ckpt"], files["ea1"], tmp_path))
    assert_one_line_error(status, err, files["ising_ckpt"], "model = 'ising'")


def test_semi_grand_dmu_is_compared_unless_conditioned_on(tmp_path):
    def ising(**kw):
        return build_system({"model": "ising", **SQUARE, **kw})

    plain = fit(ising(dmu=0.1), tmp_path / "plain")
    for other, shown in ((0.2, "has 0.2"), (0.0, "has 0.0")):
        with pytest.raises(CheckpointError, match=f"dmu = 0.1, but the system {shown}"):
            load_trained_model(plain, ising(dmu=other))
    conditioned = fit(ising(dmu=0.1), tmp_path / "cond", spec={**MADE, "n_cond": 1}, dmu_range=[-0.5, 0.5])
    load_trained_model(conditioned, ising(dmu=-0.3))
    with pytest.raises(CheckpointError, match="J = 1.0, but the system has 2.0"):
        load_trained_model(conditioned, ising(dmu=-0.3, J=2.0))


def test_transfer_compares_the_coupling_distribution_not_the_draw(tmp_path):
    small = build_system({"model": "edwards_anderson", "lattice": "square", "train_size": [2, 2], "coupling_seed": 1})
    checkpoint = fit(small, tmp_path, spec=TINY_TRANSFORMER)
    big_other_draw = build_system({"model": "edwards_anderson", "lattice": "square", "train_size": [4, 4],
                                   "coupling_seed": 2})
    assert load_trained_model(checkpoint, big_other_draw, same_size=False).model.n_sites == 16
    with pytest.raises(CheckpointError, match="model = 'edwards_anderson', but the system has 'ising'"):
        load_trained_model(checkpoint, build_system({"model": "ising", "lattice": "square", "train_size": [4, 4]}),
                           same_size=False)


def ce_system(ce_file, size):
    """The semi-grand cluster-expansion system of ``ce_file`` (dmu 0) on the fcc cell ``size``."""
    return build_system({"model": "cluster_expansion", "alloy": "ce", "lattice": "fcc", "train_size": list(size)},
                        ce_file=ce_file, name="ce")


def test_cluster_expansion_identity_is_cell_independent_and_follows_the_ecis(ce, tmp_path):
    ce_file = write_cluster_expansion(ce, tmp_path / "ce.json")
    identities = {ce_system(ce_file, size).hamiltonian.identity()["sha256"]
                  for size in [(1, 1, 1), (2, 2, 2), (2, 2, 4)]}
    assert len(identities) == 1
    params = np.array(ce.parameters)
    params[2] += 1e-9
    edited = write_cluster_expansion(ClusterExpansion(ce.get_cluster_space_copy(), params), tmp_path / "edited.json")
    checkpoint = fit(ce_system(ce_file, (1, 1, 2)), tmp_path / "run", temperature=1000.0)
    with pytest.raises(CheckpointError, match="sha256"):
        load_trained_model(checkpoint, ce_system(edited, (1, 1, 2)))
    load_trained_model(checkpoint, ce_system(ce_file, (1, 1, 2)))


def test_checkpoint_without_the_hamiltonian_is_refused(files, tmp_path, capsys):
    state = load_checkpoint(files["ising_ckpt"])
    del state["system"]["hamiltonian"]
    old = tmp_path / "old.pt"
    save_checkpoint(old, state)
    status, err = cli_in_process(capsys, *sample_args(old, files["ising"], tmp_path))
    assert_one_line_error(status, err, old, "before lattherm recorded the Hamiltonian; retrain")


# -- corrupt and foreign checkpoints ------------------------------------------------------------
def _garbage(path, files):
    path.write_bytes(random.Random(0).randbytes(3000))


def _truncated(path, files):
    data = files["ising_ckpt"].read_bytes()
    path.write_bytes(data[: len(data) // 2])


CORRUPTIONS = {  # how to make the checkpoint, what the error says, the system it is given with
    "garbage": (_garbage, "corrupt", "ising"),
    "truncated": (_truncated, "corrupt", "ising"),
    "empty": (lambda path, files: path.write_bytes(b""), "empty file", "ising"),
    "directory": (lambda path, files: path.mkdir(), "Is a directory", "ising"),
    "other lattice": (lambda path, files: shutil.copy(files["fcc_ckpt"], path), "lattice_kind = 'fcc'", "ising"),
    # a CuAu cluster expansion's checkpoint on the same (fcc) lattice as an Ising system
    "other species": (lambda path, files: shutil.copy(files["cuau_ckpt"], path), "species = ['Cu', 'Au']", "fcc"),
}


@pytest.mark.parametrize("command", ["train", "sample", "transfer"])
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_or_foreign_checkpoints_are_one_line_errors(files, tmp_path, capsys, command, corruption):
    make, problem, system = CORRUPTIONS[corruption]
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    make(checkpoint, files)
    bigger = BIGGER[SYSTEMS[system]["lattice"]]
    args = {"train": train_args(files, system, checkpoint.parent),
            "sample": sample_args(checkpoint, files[system], tmp_path),
            "transfer": transfer_args(checkpoint, files[system], tmp_path, size=bigger)}[command]
    status, err = cli_in_process(capsys, *args)
    assert_one_line_error(status, err, checkpoint, problem)


def test_resume_with_another_model_kind_is_refused(files, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(files["ising_ckpt"].parent, run)
    status, err = cli_in_process(capsys, *train_args(files, "ising", run, model="transformer"))
    assert_one_line_error(status, err, run / "checkpoint.pt", "holds the model {'kind': 'made'")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickled_code_is_refused_and_never_run(files, tmp_path, capsys):
    marker = tmp_path / "marker"
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(pickle.dumps({"format": _RunsCode(marker)}, protocol=pickle.HIGHEST_PROTOCOL))
    # in a fresh interpreter, so that a warning printed on stderr would show
    result = run_cli(*sample_args(checkpoint, files["ising"], tmp_path))
    assert_one_line_error(result.returncode, result.stderr, checkpoint, "corrupt")
    assert not marker.exists()
    torch.save(_RunsCode(marker), checkpoint)
    for args in (train_args(files, "ising", checkpoint.parent),
                 transfer_args(checkpoint, files["ising"], tmp_path, size=BIGGER["square"])):
        assert_one_line_error(*cli_in_process(capsys, *args), checkpoint, "corrupt")
        assert not marker.exists()


# -- killed, terminated and interrupted runs ----------------------------------------------------
LONG_TRAINING = {"steps": 200, "batch_size": 64, "lr": 0.01, "checkpoint_every": 10, "temperature": 2.5, "seed": 3}


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """YAML files of a 200-step run on 4x4 Ising and its uninterrupted result."""
    d = tmp_path_factory.mktemp("long")
    files = {"system": write_yaml(d / "system.yaml", {"model": "ising", "lattice": "square", "train_size": [4, 4]}),
             "model": write_yaml(d / "model.yaml", {"kind": "made", "hidden": 16}),
             "training": write_yaml(d / "training.yaml", LONG_TRAINING)}
    files["reference"] = d / "reference"
    result = run_cli(*long_args(files, files["reference"]))
    assert result.returncode == 0, result.stderr
    return files


def long_args(files, out_dir, training=None):
    return ["neural", "train", "--system", files["system"], "--model", files["model"],
            "--training", training or files["training"], "--out-dir", out_dir]


def start(files, out_dir, training=None) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, long_args(files, out_dir, training))], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def file_version(path):
    """What changes when ``path`` is replaced (an atomic write renames a new file onto it)."""
    return (path.stat().st_ino, path.stat().st_mtime_ns) if path.exists() else None


def wait_for(path, process, old_version=None):
    """Until ``process`` has written ``path`` (a version other than ``old_version``)."""
    while file_version(path) in (None, old_version):
        assert process.poll() is None, f"the run ended before writing {path}"
        time.sleep(0.002)


def assert_same_state(a, b, where="state"):
    """Equal nested checkpoint contents, tensors compared exactly."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), where  # NaN == NaN here


def assert_same_as_reference(out_dir, reference):
    ours, ref = load_checkpoint(out_dir / "checkpoint.pt"), load_checkpoint(reference / "checkpoint.pt")
    assert ours["step"] == ref["step"] == LONG_TRAINING["steps"]
    for key in ("model_state", "optimizer_state", "rng"):
        assert_same_state(ours[key], ref[key], key)
    cols = [c for c in pd.read_csv(reference / "log.csv").columns if c != "wall_time"]
    pd.testing.assert_frame_equal(pd.read_csv(out_dir / "log.csv")[cols], pd.read_csv(reference / "log.csv")[cols],
                                  check_exact=True)
    assert not (out_dir / ".progress").exists()  # removed once the run is complete


def test_sigkill_after_a_checkpoint_then_rerun_is_bit_for_bit(long_run, tmp_path):
    out = tmp_path / "run"
    process = start(long_run, out)
    wait_for(out / ".progress" / "checkpoint.pt", process)
    process.kill()
    process.wait()
    assert not (out / "checkpoint.pt").exists()  # nothing a workflow manager would take as done
    saved = load_checkpoint(out / ".progress" / "checkpoint.pt")["step"]
    assert 0 < saved < LONG_TRAINING["steps"]
    result = run_cli(*long_args(long_run, out))
    assert result.returncode == 0, result.stderr
    assert_same_as_reference(out, long_run["reference"])


def test_sigterm_saves_progress_exits_143_and_resumes_exactly(long_run, tmp_path):
    out = tmp_path / "run"
    every = 50
    training = write_yaml(tmp_path / "training.yaml", {**LONG_TRAINING, "checkpoint_every": every})
    process = start(long_run, out, training)
    wait_for(out / ".progress" / "log.csv", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    # 143 is train's own exit (a process that SIGTERM ended has returncode -15)
    assert process.returncode == 143 and "Traceback" not in stderr, stderr
    state = load_checkpoint(out / ".progress" / "checkpoint.pt")
    # saved at the end of the step under way (test_an_interrupted_extension... checks which)
    assert every <= state["step"] < LONG_TRAINING["steps"]
    assert len(pd.read_csv(out / ".progress" / "log.csv")) == state["step"]
    result = run_cli(*long_args(long_run, out, training))
    assert result.returncode == 0, result.stderr
    assert_same_as_reference(out, long_run["reference"])


@pytest.mark.slow
def test_repeated_kills_at_random_times_leave_no_temporaries(long_run, tmp_path):
    """Checkpoints every step, so that kills land in the middle of a write (about two in five
    do): kill each rerun soon after it saved, until one left a temporary file behind."""
    out, progress = tmp_path / "run", tmp_path / "run" / ".progress" / "checkpoint.pt"
    training = write_yaml(tmp_path / "training.yaml", {**LONG_TRAINING, "checkpoint_every": 1})
    rng = random.Random(0)
    for _ in range(20):
        process = start(long_run, out, training)
        wait_for(progress, process, file_version(progress))
        time.sleep(rng.uniform(0.0, 0.05))
        process.kill()
        process.wait()
        if [p for p in out.rglob("*") if p.name.endswith(".tmp")]:
            break
    else:
        pytest.fail("no kill landed in the middle of a write")
    result = run_cli(*long_args(long_run, out, training))
    assert result.returncode == 0, result.stderr
    assert_same_as_reference(out, long_run["reference"])
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_an_interrupted_extension_resumes_from_its_progress(tmp_path, monkeypatch):
    """OUT_DIR holds a finished 4-step run; extending it to 40 steps is interrupted by SIGTERM
    and resumed: the progress, further along, wins; a stale progress file loses."""
    system = build_system({"model": "ising", **SQUARE})

    def run(steps, out_dir):
        torch.manual_seed(0)
        config = TrainConfig(steps=steps, batch_size=8, lr=0.01, checkpoint_every=2, temperature=2.0)
        return train(build_model(MADE, system.lattice), system, config, out_dir, progress=False)

    reference = run(40, tmp_path / "reference")
    out, progress = tmp_path / "run", tmp_path / "run" / ".progress" / "checkpoint.pt"
    run(4, out)

    steps_seen = []

    def terminate_in_step_7(energy, log_q, beta, weights=variational.log_weights):  # once a step (one shard)
        steps_seen.append(None)
        if len(steps_seen) == 3:  # steps 5, 6, 7 of the resumed run
            os.kill(os.getpid(), signal.SIGTERM)
        return weights(energy, log_q, beta)

    def outer_handler(signum, frame):
        raise AssertionError("train() should have handled SIGTERM")

    monkeypatch.setattr(variational, "log_weights", terminate_in_step_7)
    previous = signal.signal(signal.SIGTERM, outer_handler)
    try:
        with pytest.raises(SystemExit) as exit_info:
            run(40, out)
        assert signal.getsignal(signal.SIGTERM) is outer_handler  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.undo()
    assert exit_info.value.code == 143
    # saved at the end of the step under way (7), past the last periodic checkpoint (6)
    assert load_checkpoint(progress)["step"] == 7 and load_checkpoint(out / "checkpoint.pt")["step"] == 4
    stale = tmp_path / "stale.pt"
    shutil.copy(progress, stale)

    resumed = run(40, out)
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    cols = [c for c in reference.log.columns if c != "wall_time"]
    pd.testing.assert_frame_equal(reference.log[cols], resumed.log[cols], check_exact=True)
    assert not progress.parent.exists()

    progress.parent.mkdir()
    shutil.copy(stale, progress)
    again = run(40, out)  # OUT_DIR's checkpoint, at step 40, is further along: nothing to redo
    pd.testing.assert_frame_equal(reference.log[cols], again.log[cols], check_exact=True)
    assert not progress.parent.exists()
