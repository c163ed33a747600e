"""The Snakemake workflow: lint, dry runs of every shipped config, and (slow) the first training
step of each, an end-to-end tiny run with rerun checks, and a killed run resumed. Runs work on
a temporary copy of the workflow files (the workdir fixture)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CONFIGS = ["config.yaml", "config/tiny.yaml", "config/paper.yaml"]


def snakemake(workdir, *args):
    return subprocess.run([SNAKEMAKE, "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile"), *args],
                          capture_output=True, text=True, cwd=workdir)


def test_lint_is_clean(workdir):
    result = snakemake(workdir, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def _planned_jobs(out: str) -> list[tuple[str, list[str], list[str]]]:
    """(rule, inputs, outputs) of every job a dry run plans, in its listing's order."""
    jobs = []
    for line in out.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append((line.split()[1][:-1], [], []))
        elif jobs and line.startswith("    input: "):
            jobs[-1][1].extend(line.removeprefix("    input: ").split(", "))
        elif jobs and line.startswith("    output: "):
            jobs[-1][2].extend(line.removeprefix("    output: ").split(", "))
    return jobs


# The cells with an exact reference: Kaufman for every zero-field square ferromagnet at any
# size, enumeration for the others up to exact.enumerate_max_sites (16 sites in tiny and paper, 20
# in the default config: its SK glass of 20 spins), so not cuau 2x2x8.
EXACT = {
    "config.yaml": {"ising": ["4x4", "8x8"], "spin_glass_seed1": ["4x4"], "spin_glass_seed2": ["4x4"], "sk": ["20"],
                    "cuau": ["2x2x4"]},
    "config/tiny.yaml": {"ising": ["4x4", "8x8"], "ising_j2": ["6x6"], "spin_glass": ["4x4"], "sk_seed0": ["10"],
                         "sk_seed1": ["10"], "cuau": ["2x2x4"]},
    "config/paper.yaml": {"ising": ["10x10", "20x20", "40x40"], "cuau": ["2x2x4"],
                          **{f"ea_4x4_seed{seed}": ["4x4"] for seed in range(1, 6)},
                          **{f"sk_20_seed{seed}": ["20"] for seed in range(5)}},
}
ONE_JOB = ["phase_diagram_block", "phase_diagram", "figure_free_energy_error", "figure_thermodynamics",
           "figure_ess_vs_size", "figure_phase_diagram", "figure_snapshots", "neural_phase_diagram_training",
           "neural_free_energy", "figure_neural_free_energy", "all"]
SPIN_GLASSES = ("edwards_anderson", "sherrington_kirkpatrick")
GAUSSIAN_BY_DEFAULT = {"sherrington_kirkpatrick": "gaussian"}


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run(workdir, configfile):
    """Every system of the config gets its exact references (where they exist), an MCMC scan
    and its free energy at every cell size, its neural runs and transfers, and a comparison; every
    alloy its fit, the phase diagram its scans. Nothing is planned for a system, size, model or
    temperature the config does not have. A spin-glass block of several disorder samples is one
    system per sample (NAME_seedS), each with its P(q) (exact where enumerated, parallel tempering,
    neural), and one disorder average and figure per block; a Gaussian block of several samples its
    energy / link-overlap identity, which its figure reads."""
    from lattherm.systems import SystemConfig

    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", configfile)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    jobs = _planned_jobs(out)
    planned = {}  # rule -> the first output of each of its jobs
    for rule, _, outputs in jobs:
        planned.setdefault(rule, []).append(outputs[0] if outputs else None)
    files = {path for _, _, outputs in jobs for path in outputs}
    config = yaml.safe_load((workdir / configfile).read_text())
    neural, models = config["neural"], config["models"]
    families = {name: SystemConfig.from_dict(block).disorder_members(name) for name, block in config["systems"].items()}
    systems = {member: system.to_dict() for members in families.values() for member, system in members.items()}
    glasses = [s for s in systems if systems[s]["model"] in SPIN_GLASSES]

    def sizes(name):
        return ["x".join(map(str, size)) for size in [systems[name]["train_size"], *systems[name].get("transfer_sizes", [])]]

    def runs(name):
        temperatures = systems[name].get("neural_temperatures", [])
        return ["all"] if temperatures and neural["conditioned"] else [f"T{t:g}" for t in temperatures]

    transformers = [m for m in neural["models"] if models[m]["kind"] == "transformer"]
    trained = [(s, run, m) for s in systems for run in runs(s) for m in systems[s].get("neural_models") or neural["models"]]
    expected = {
        "ce_fit": {f"results/ce/{alloy}.json" for alloy in config["alloys"]},
        "exact_reference": {f"results/references/{s}/exact_{size}.csv" for s, cells in EXACT[configfile].items()
                            for size in cells},
        "mcmc_run": {f"results/references/{s}/mcmc_{size}.csv" for s in systems for size in sizes(s)},
        "neural_train": {f"results/neural/{s}/{m}/{run}/checkpoint.pt" for s, run, m in trained},
        "neural_sample": {f"results/neural/{s}/{m}/{run}/samples.csv" for s, run, m in trained},
        "neural_transfer": {f"results/neural/{s}/{m}/{run}/transfer_{size}.csv" for s, run, m in trained
                            if m in transformers for size in sizes(s)[1:]},
        "compare_free_energies": {f"results/analysis/{s}/free_energy_comparison.csv" for s in systems},
        "overlap_exact": {f"results/references/{s}/overlap_exact_{size}.csv" for s, cells in EXACT[configfile].items()
                          if s in glasses for size in cells},
        "overlap_tempering": {f"results/references/{s}/overlap_pt_{sizes(s)[0]}.csv" for s in glasses},
        "neural_overlap": {f"results/neural/{s}/{m}/{run}/overlap.csv" for s, run, m in trained if s in glasses},
        "disorder_average": {f"results/analysis/spin_glass/{name}/thermodynamics.csv" for name in families
                             if config["systems"][name]["model"] in SPIN_GLASSES},
        "figure_spin_glass": {f"results/figures/spin_glass_{name}.png" for name in families
                              if config["systems"][name]["model"] in SPIN_GLASSES},
        # the energy / link-overlap identity: Gaussian families (SK's default) of several samples
        "link_overlap_identity": {f"results/analysis/spin_glass/{name}/identity.csv" for name, block in
                                  config["systems"].items() if block.get("disorder_samples", 1) > 1
                                  and block.get("couplings", GAUSSIAN_BY_DEFAULT.get(block["model"])) == "gaussian"},
        "canonical_scan": {f"results/phase_diagram/canonical_x{x:g}.csv" for x in config["phase_diagram"]["concentrations"]},
        "semi_grand_scan": {f"results/phase_diagram/semi_grand_{d}.csv" for d in ("up", "down")},
        "vcsgc_scan": {f"results/phase_diagram/vcsgc_T{t:g}.csv"
                       for t in config["phase_diagram"].get("vcsgc_temperatures", [])},
        "transition": {f"results/phase_diagram/transition_x{x:g}.csv"
                       for x in config["phase_diagram"]["heating_concentrations"]},
        "phase_sum": {f"results/phase_diagram/canonical_x{x:g}_phase_sum.csv"
                      for x in config["phase_diagram"]["heating_concentrations"]},
        "training_block": {f"results/config/training/{s}/{run}.json" for s in systems for run in runs(s)},
        "config_block": ({f"results/config/systems/{s}.json" for s in systems}
                         | {f"results/config/alloys/{a}.json" for a in config["alloys"]}
                         | {f"results/config/models/{m}.json" for m in {*neural["models"], *(m for _, _, m in trained)}}),
    }
    # the neural F(x, T): one conditioned model, a grid per cell, enumeration on the training cell, MCMC on the other
    grid = config["neural_phase_diagram"]
    xs = [f"{x:g}" for x in grid["concentrations"]]
    train, transfer = ("x".join(map(str, grid[key])) for key in ("train_size", "transfer_size"))
    expected |= {
        "neural_phase_diagram_train": {f"results/phase_diagram/neural/{grid['model']}/checkpoint.pt"},
        "neural_phase_diagram_grid": {f"results/phase_diagram/neural/{grid['model']}/grid_{size}.csv"
                                      for size in (train, transfer)},
        "neural_phase_diagram_exact": {f"results/phase_diagram/neural/exact_x{x}_{train}.csv" for x in xs},
        "neural_phase_diagram_mcmc": {f"results/phase_diagram/neural/mcmc_x{x}_{transfer}.csv" for x in xs},
        "neural_phase_diagram_system": {f"results/config/neural_phase_diagram/x{x}.json" for x in xs},
    }
    expected["config_block"] |= {f"results/config/models/{grid['model']}.json"}
    assert expected["neural_train"] and expected["neural_transfer"] and len(expected["exact_reference"]) >= 3
    for rule, outputs in expected.items():
        assert sorted(planned.get(rule, [])) == sorted(outputs), f"{configfile}: {rule} plans {planned.get(rule)}"
    # the free energy of every MCMC scan and canonical scan (the comparison and the hull read them)
    free_energies = {path.replace(".csv", "_free_energy.csv") for path in expected["mcmc_run"] | expected["canonical_scan"]}
    assert free_energies <= files, f"{configfile}: no job for {sorted(free_energies - files)}"
    # the composition histograms of every VCSGC scan (the analysis reweights them into F(c))
    histograms = {path.replace(".csv", "_histograms.csv") for path in expected["vcsgc_scan"]}
    assert histograms <= files, f"{configfile}: no job for {sorted(histograms - files)}"
    # a Gaussian family's figure reads its identity table and draws it; the others' not
    figure_inputs = {path: inputs for rule, inputs, outputs in jobs if rule == "figure_spin_glass" for path in outputs}
    checked = {path.split("/")[3] for path in expected["link_overlap_identity"]}
    for name in {path.split("/")[3] for path in expected["disorder_average"]}:
        identity = f"results/analysis/spin_glass/{name}/identity.csv"
        assert (identity in figure_inputs[f"results/figures/spin_glass_{name}.png"]) == (name in checked), name
        assert (f"figure-spin-glass {identity} --thermodynamics" in out) == (name in checked), name
    if configfile == "config/paper.yaml":  # the expectation above is not vacuous: Gaussian EA in, +-J EA out
        assert {"ea_gaussian_16x16", "ea_gaussian_3d"} <= checked and not checked & {"ea_4x4", "ea_16x16", "ea_3d"}
    for rule in ONE_JOB:
        assert len(planned.get(rule, [])) == 1, f"{configfile}: {rule} has {len(planned.get(rule, []))} jobs"
    # each stage reads the block of its own system, on the cell of its job
    for s in systems:
        assert f"--system results/config/systems/{s}.json --size {sizes(s)[0]}" in out, s


@pytest.mark.slow
@pytest.mark.parametrize("configfile", CONFIGS)
def test_every_shipped_config_runs_its_first_training_step(workdir, configfile):
    """Each config's own models, systems and conditioning, one optimiser step per training job
    (one disorder sample per glass family: the others differ only in their coupling seed)."""
    config = yaml.safe_load((workdir / configfile).read_text())
    config["training"].update(steps=1, batch_size=8)
    for block in config["systems"].values():  # a system's own training settings, refinement included, run too
        if block.get("training"):
            block["training"].update(steps=1, batch_size=8)
            if block["training"].get("example_sweeps"):  # the examples' tempering run: short pilots and burn-in
                block["mcmc"].update(sweeps=200, burn_in=10)
        if "disorder_samples" in block:
            block["disorder_samples"] = 1
    (workdir / "one_step.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "2", "--until", "neural_train", "--configfile", "one_step.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    summaries = list((workdir / "results" / "neural").glob("*/*/*/summary.json"))
    trained = [(block.get("neural_temperatures", []), block.get("disorder_samples", 1),
                len(block.get("neural_models") or config["neural"]["models"])) for block in config["systems"].values()]
    runs = [samples * models * (1 if config["neural"].get("conditioned") else len(t)) if t else 0
            for t, samples, models in trained]
    assert len(summaries) == sum(runs)


def _run_tiny(workdir: Path) -> None:
    """The tiny config end to end in ``workdir``, or, where ``LATTHERM_TINY_RUN`` names a checkout
    of this commit that has finished it (CI's stage (a)), its outputs and Snakemake's records
    copied in: the checks below then also show that a finished run moved elsewhere is up to date."""
    import os
    import shutil

    finished = os.environ.get("LATTHERM_TINY_RUN")
    if finished:
        finished = Path(finished)
        skip = {finished / ".snakemake": {"locks", "log", "incomplete"}}  # that run's own state, not its records
        for name in ["results", "logs", "benchmarks", ".snakemake"]:
            if (finished / name).is_dir():
                shutil.copytree(finished / name, workdir / name, dirs_exist_ok=True,
                                ignore=lambda folder, names: skip.get(Path(folder), set()) & set(names))
    run = snakemake(workdir, "--cores", "2", "--configfile", "config/tiny.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    if finished:
        assert "Nothing to be done" in run.stdout + run.stderr, run.stdout + run.stderr


@pytest.mark.slow
def test_tiny_end_to_end_then_nothing_to_do_then_training_change_reruns_dependents(workdir):
    """The tiny config's five systems (Ising J = 1 and J = 2, an Edwards-Anderson spin glass, an
    SK glass of two disorder samples, CuAu) run end to end; each system's MCMC free energies agree with its own exact reference
    within error bars (the J = 2 system with Kaufman at J = 2), and a training change reruns
    only training and what depends on it."""
    import numpy as np
    import pandas as pd

    from lattherm.exact.kaufman import ising_thermo

    _run_tiny(workdir)
    for name in ["free_energy_error", "thermodynamics", "ess_vs_size", "phase_diagram", "snapshots",
                 "spin_glass_spin_glass", "spin_glass_sk"]:
        for ext in ("png", "pdf"):
            assert (workdir / "results" / "figures" / f"{name}.{ext}").stat().st_size > 0
    analysis = workdir / "results" / "analysis"
    vcsgc = pd.read_csv(analysis / "phase_diagram" / "vcsgc_check.csv")  # the VCSGC F(c) against the canonical F(x)
    vcsgc_temperatures = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())["phase_diagram"]["vcsgc_temperatures"]
    assert len(vcsgc) and set(vcsgc.temperature) == set(vcsgc_temperatures) and np.isfinite(vcsgc.difference_sigmas).all()
    for system in ("ising", "ising_j2", "spin_glass", "sk_seed0", "sk_seed1", "cuau"):
        table = pd.read_csv(analysis / system / "free_energy_comparison.csv")
        mcmc = table[(table.method == "mcmc") & table.reference_free_energy_per_site.notna()]
        assert len(mcmc) >= 2 and np.all(np.abs(mcmc.error_sigmas) < 4), (system, mcmc)
    j2 = pd.read_csv(analysis / "ising_j2" / "free_energy_comparison.csv")
    exact = ising_thermo(6, 6, 1 / j2.temperature.to_numpy(), J=2.0).free_energy.to_numpy() / 36
    np.testing.assert_allclose(j2.reference_free_energy_per_site, exact, rtol=1e-12)
    # J = 1 at the system's temperatures is far from the J = 2 answer: the old, J-less rule fails
    # here (at the MCMC ladder's top, T = 40, both tend to -T ln 2 and differ by only ~4 sigma)
    tiny = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    physical = j2[j2.temperature.isin(tiny["systems"]["ising_j2"]["temperatures"])]
    assert len(physical) == 3
    wrong = ising_thermo(6, 6, 1 / physical.temperature.to_numpy()).free_energy.to_numpy() / 36
    assert np.all(np.abs(physical.free_energy_per_site - wrong) > 20 * physical.free_energy_per_site_err)

    again = snakemake(workdir, "-n", "--cores", "2", "--configfile", "config/tiny.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    config = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    config["training"]["lr"] = 2 * config["training"]["lr"]
    (workdir / "changed.yaml").write_text(yaml.safe_dump(config, sort_keys=False))  # key order is part of a block's params
    changed = snakemake(workdir, "-n", "--cores", "2", "--configfile", "changed.yaml", "--quiet", "rules")
    out = changed.stdout + changed.stderr
    assert changed.returncode == 0, out
    rerun = {line.split()[0] for line in out.splitlines() if line.strip() and line.split()[0].islower()
             and len(line.split()) == 2 and line.split()[1].isdigit()}
    assert {"training_block", "neural_train", "neural_sample", "neural_transfer", "compare_free_energies"} <= rerun
    assert not rerun & {"ce_fit", "exact_reference", "mcmc_run", "mcmc_free_energy", "canonical_scan",
                        "config_block"}


def _every_result_parses(results: Path) -> int:
    """Every file under results/ is complete: tables, JSON, checkpoints and figures load."""
    import json

    import pandas as pd
    import torch

    count = 0
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        assert not path.name.endswith(".tmp"), f"stray temporary {path}"
        if path.suffix == ".csv":
            assert len(pd.read_csv(path).columns) > 0, path  # a header at least: some tables are legitimately empty
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            assert isinstance(torch.load(path, weights_only=True), dict), path
        elif path.suffix == ".yaml":
            assert yaml.safe_load(path.read_text()) is not None, path
        elif path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG") and path.read_bytes().endswith(b"IEND\xaeB`\x82"), path
        elif path.suffix == ".pdf":
            assert path.read_bytes().startswith(b"%PDF") and b"%%EOF" in path.read_bytes()[-64:], path
        count += 1
    return count


@pytest.mark.slow
def test_killed_pipeline_resumes_training_and_leaves_no_partial_file(workdir):
    """SIGKILL snakemake and every job it started mid-training; after `--unlock` (Snakemake
    cannot tell a dead run's lock from a live one) the same command finishes every training run
    and what it needs, and the killed training continues from its progress checkpoint instead
    of step 0. (The tiny run end to end is the test above's and CI's stage (a).)"""
    import os
    import signal
    import time

    config = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    config["training"].update(steps=400, checkpoint_every=20)
    (workdir / "long.yaml").write_text(yaml.safe_dump(config))
    command = [SNAKEMAKE, "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile"),
               "--cores", "2", "--configfile", "long.yaml", "--until", "neural_train"]
    run = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    progress = workdir / "results" / "neural"
    deadline = time.monotonic() + 900
    # watch a transformer run (the slower model, 400 steps): killed at once, it is mid-training
    while not list(progress.glob("*/mam/*/.progress/checkpoint.pt")) and time.monotonic() < deadline:
        assert run.poll() is None, "the workflow ended before any training saved its progress"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    killed = {path.parents[1]: _step(path) for path in progress.glob("*/*/*/.progress/checkpoint.pt")}
    assert killed and max(killed.values()) > 0

    assert snakemake(workdir, "--unlock", "--configfile", "long.yaml").returncode == 0
    rerun = snakemake(workdir, "--cores", "2", "--configfile", "long.yaml", "--until", "neural_train")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    again = snakemake(workdir, "-n", "--configfile", "long.yaml", "--until", "neural_train")
    assert again.returncode == 0 and not _planned_jobs(again.stdout), again.stdout  # --until: "total 0", not "Nothing to be done"
    assert _every_result_parses(workdir / "results") > 10
    for run_dir, step in killed.items():
        system, model, tag = run_dir.parts[-3:]
        log = workdir / "logs" / "neural" / f"train_{system}_{model}_{tag}.log"
        assert f"resuming from step {step}" in log.read_text()
        assert not (run_dir / ".progress").exists()


def _step(checkpoint: Path) -> int:
    import torch

    return int(torch.load(checkpoint, weights_only=True)["step"])


def test_system_training_overrides_reach_its_runs_only(workdir):
    """The default EA glass's own training settings (MC refinement) go into its runs' training
    blocks over the top-level section; other systems' runs keep that section, and the glass's
    system block leaves them out, so changing them reruns its training but not its references."""
    import json

    targets = ["results/config/training/spin_glass_seed1/T1.json", "results/config/training/ising/T2.json",
               "results/config/systems/spin_glass_seed1.json"]
    result = snakemake(workdir, "--cores", "1", *targets)
    assert result.returncode == 0, result.stdout + result.stderr
    glass, ising, system = (json.loads((workdir / target).read_text()) for target in targets)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    own = config["systems"]["spin_glass"]["training"]
    assert own["refine_sweeps"] > 0
    assert glass == {**config["training"], "lr_final": None, "checkpoint_every": 100, "device": "auto",
                     "dtype": "float32", "shards": 1, "refine_weight": 1.0, "example_sweeps": 0, "example_weight": 1.0,
                     **own, "seed": config["seed"], "temperature": 1.0}
    assert ising["refine_sweeps"] == 0 and ising["steps"] == config["training"]["steps"] and ising["temperature"] == 2.0
    assert "training" not in system and system["coupling_seed"] == 1


def test_a_config_without_the_phase_diagram_blocks_plans_the_rest(workdir):
    """phase_diagram and neural_phase_diagram are optional: without them no phase-diagram job
    is planned and everything else is."""
    config = yaml.safe_load((workdir / "config/tiny.yaml").read_text())
    del config["phase_diagram"], config["neural_phase_diagram"]
    (workdir / "no_phase_diagram.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", "no_phase_diagram.yaml")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    rules = {rule for rule, *_ in _planned_jobs(out)}
    assert {"neural_train", "mcmc_run", "figure_free_energy_error"} <= rules
    assert not {rule for rule in rules if "phase_diagram" in rule or rule in ("canonical_scan", "transition",
                                                                                "neural_free_energy")}
