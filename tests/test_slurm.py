"""The SLURM profiles (snakemake-executor-plugin-slurm 2.8.0) and the check that stops a run
before any job where the plugin's status polling would hang. The profiles' run through a real
one-node SLURM is .ci/slurm-local.sh (CI's last stage)."""

import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from lattherm.slurm import MIN_JOB_AGE, status_problem

ROOT = Path(__file__).resolve().parents[1]
NEURAL = ("neural_train", "neural_sample", "neural_transfer")


def profile(name):
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def rule_blocks() -> dict[str, str]:
    """Each rule's text in workflow/rules/*.smk."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    parts = re.split(r"^rule (\w+):\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_profiles_use_options_that_exist():
    from snakemake.cli import get_argument_parser

    options = {o for action in get_argument_parser()._actions for o in action.option_strings}
    for name in ("slurm", "slurm-gpu"):
        for key in profile(name):
            assert f"--{key}" in options, (name, key)
        # defined by plugin 2.8.0 but never read (get_account_arg ignores it): misleading in a profile
        assert "slurm-no-account" not in profile(name)


def test_cpu_profile_asks_no_gpu_and_lets_threads_and_rule_resources_through():
    cpu = profile("slurm")
    assert cpu["executor"] == "slurm" and cpu["slurm-status-command"] in ("squeue", "sacct")
    # cpus_per_task would replace every rule's threads in the sbatch call; mem_mb and runtime in
    # default-resources would replace the rules' own
    assert set(cpu["default-resources"]) == {"slurm_partition"}
    text = (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    assert not re.search(r"^\s*(gpu|gpu_model|gres|cpus_per_task):", text, flags=re.M)
    assert set(cpu["set-threads"]) >= set(NEURAL)


def test_gpu_profile_is_the_cpu_profile_plus_one_gpu_per_neural_job():
    cpu, gpu = profile("slurm"), profile("slurm-gpu")
    added = {rule: gpu["set-resources"].pop(rule) for rule in NEURAL}
    assert gpu == cpu
    assert all(resources == {"slurm_partition": "gpu", "gpu": 1} for resources in added.values())


def test_rules_demand_no_gpu_and_declare_memory_and_runtime():
    blocks = rule_blocks()
    text = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    local = {name for block in re.findall(r"^localrules:\n((?:\s+\w+,\n)+)", text, flags=re.M)
             for name in re.findall(r"\w+", block)}
    assert "config_block" in local
    for rule, body in blocks.items():
        assert not re.search(r"^\s+(gpu|gpu_model|gres)=", body, flags=re.M), rule
        if rule not in local:
            assert re.search(r"^\s+mem_mb=\d+", body, flags=re.M) and re.search(r"^\s+runtime=\d+", body, flags=re.M), rule


class Resources(SimpleNamespace):
    def get(self, key, default=None):
        return getattr(self, key, default)


def test_the_plugin_submits_threads_as_cpus_and_the_gpu_as_gpus():
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    gpu = profile("slurm-gpu")
    declared = re.search(r"mem_mb=(\d+),\s*runtime=(\d+)", rule_blocks()["neural_train"])
    resources = Resources(**{"mem_mb": int(declared[1]), "runtime": int(declared[2]), **gpu["default-resources"],
                             **gpu["set-resources"]["neural_train"]})
    job = SimpleNamespace(resources=resources, threads=gpu["set-threads"]["neural_train"])
    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": "c", "account": "",
              "partition": f" -p {resources.slurm_partition}", "workdir": "/w"}
    call = get_submit_command(job, params) + set_gres_string(job)
    for part in (f"--cpus-per-task={job.threads}", "-p gpu", "--gpus=1", f"--mem {declared[1]}", f"-t {declared[2]}"):
        assert part in call, (part, call)


def fake_slurm(tmp_path, monkeypatch, min_job_age=300, sacct="fails", squeue="works"):
    """SLURM's commands as scripts, alone on PATH (the plugin looks for them with `which`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "which": f'[ -x "{bin_dir}/$1" ] && echo "{bin_dir}/$1"',
        "sinfo": "exit 0",
        "scontrol": f'echo "MinJobAge               = {min_job_age} sec"',
        "squeue": "exit 0" if squeue == "works" else 'echo "squeue: error: Unable to contact slurm controller" >&2; exit 1',
        "sacct": "exit 0" if sacct == "works" else 'echo "Slurm accounting storage is disabled" >&2; exit 1',
    }
    for name, body in scripts.items():
        if name == "sacct" and sacct == "missing":
            continue
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.mark.parametrize("command, setup, expected", [
    # no accounting: sacct fails, and the plugin would poll it for ever
    ("sacct", {}, "`sacct` fails here (Slurm accounting storage is disabled); set `slurm-status-command: squeue`"),
    ("squeue", {}, None),
    ("sacct", {"sacct": "works"}, None),  # accounting set up
    ("sacct", {"sacct": "missing"}, None),  # the plugin falls back to squeue, which works
    # a short MinJobAge makes the plugin poll sacct instead of squeue
    ("squeue", {"min_job_age": 60}, "MinJobAge = 60 s is under 3 x slurm-init-seconds-before-status-checks"),
    # without sacct, squeue would forget finished jobs between two polls
    ("squeue", {"min_job_age": 60, "sacct": "missing"}, f"ask for MinJobAge >= {MIN_JOB_AGE} s"),
    ("squeue", {"squeue": "fails"}, "`squeue` fails here (squeue: error: Unable to contact slurm controller)"),
    (None, {}, "SLURM's commands (sinfo, squeue, sacct) are not on PATH"),
])
def test_status_polling_that_would_hang_is_named(tmp_path, monkeypatch, command, setup, expected):
    fake_slurm(tmp_path, monkeypatch, **setup)
    problem = status_problem(command, 40)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem, problem
