"""The workflow config is checked once, up front: a table of malformed configs, each refused with
one line naming the field and its value, before any job; --configfile replaces config.yaml; the
Kaufman reference uses the config's J."""

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lattherm.config import ConfigError, check_workflow_config
from lattherm.exact.enumeration import exact_thermo
from lattherm.hamiltonians.ising import Ising
from lattherm.lattices import make_lattice

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())


def _section(config, parents):
    for name in parents:
        config = config[name]
    return config


def _set(path, value):
    def edit(config):
        *parents, key = path.split(".")
        _section(config, parents)[key] = value
    return edit


def _drop(path):
    def edit(config):
        *parents, key = path.split(".")
        del _section(config, parents)[key]
    return edit


def _edits(*edits):
    def edit(config):
        for one in edits:
            one(config)
    return edit


def _rename_system(old, new):
    def edit(config):
        config["systems"][new] = config["systems"].pop(old)
    return edit


SK = {"model": "sherrington_kirkpatrick", "train_size": [20], "temperatures": [1.0], "neural_temperatures": [1.0],
      "mcmc": {"temperatures": [5.0, 1.0], "chains": 16, "sweeps": 200, "burn_in": 50}}


# (edit, text the one-line error must contain: the field and the offending value)
BAD_CONFIGS = {
    # numbers
    "nan temperature": (_set("systems.ising.temperatures", [2.0, math.nan]), ["systems.ising.temperatures[1]", "nan"]),
    "1e400 temperature": (_set("systems.cuau.temperatures", [450.0, 1e400]), ["systems.cuau.temperatures[1]", "inf"]),
    "nan trained temperature (tag Tnan)": (_set("systems.ising.neural_temperatures", [math.nan]),
                                           ["systems.ising.neural_temperatures[0]", "nan"]),
    "nan MCMC temperature": (_set("systems.ising.mcmc.temperatures", [20.0, math.nan]),
                             ["systems.ising.mcmc.temperatures[1]", "nan"]),
    "empty temperature list": (_set("systems.ising_j2.temperatures", []), ["systems.ising_j2.temperatures", "[]"]),
    "empty MCMC temperature list": (_set("systems.ising.mcmc.temperatures", []), ["systems.ising.mcmc.temperatures", "[]"]),
    "negative temperature": (_set("systems.ising.mcmc.temperatures", [2.0, -1.0]),
                             ["systems.ising.mcmc.temperatures[1]", "-1.0"]),
    "zero temperature": (_set("systems.ising.temperatures", [0.0]), ["systems.ising.temperatures[0]", "0.0"]),
    "boolean temperature": (_set("systems.ising.temperatures", [True]), ["systems.ising.temperatures[0]", "True"]),
    "wrong type": (_set("training.steps", "many"), ["training.steps", "'many'"]),
    "J not a number": (_set("systems.ising.J", "one"), ["systems.ising.J", "'one'"]),
    "negative seed": (_set("seed", -1), ["seed", "-1"]),
    "negative coupling seed": (_set("systems.spin_glass.coupling_seed", -1), ["systems.spin_glass.coupling_seed", "-1"]),
    "no disorder samples": (_set("systems.spin_glass.disorder_samples", 0), ["systems.spin_glass.disorder_samples", "0"]),
    "disorder samples of a ferromagnet": (_set("systems.ising.disorder_samples", 3),
                                          ["systems.ising.disorder_samples", "'ising'"]),
    "disorder sample named like another system": (_edits(_set("systems.spin_glass.disorder_samples", 3),
                                                         lambda c: c["systems"].update(spin_glass_seed2=c["systems"]["ising"])),
                                                  ["systems.spin_glass.disorder_samples = 3", "spin_glass_seed1",
                                                   "spin_glass_seed3", "systems.spin_glass_seed2 exists"]),
    "enumeration beyond its limit": (_set("exact.enumerate_max_sites", 30), ["exact.enumerate_max_sites", "30"]),
    # keys and names
    "unknown key": (_set("training.learning_rat", 0.1), ["training", "learning_rat"]),
    "unknown key in a system": (_set("systems.ising.temperature", 2.0), ["systems.ising", "'temperature'"]),
    "unknown key in a system's mcmc block": (_set("systems.ising.mcmc.sweep", 100), ["systems.ising.mcmc", "'sweep'"]),
    "unknown top-level section": (_set("isnig", {}), ["isnig"]),
    "a section of the old vocabulary": (_set("ising", {"J": 1.0}), ["'ising'"]),
    "no systems": (_set("systems", {}), ["systems", "{}"]),
    "system name that is no file name": (_rename_system("ising", "ising/8x8"), ["systems", "'ising/8x8'"]),
    "system name with a space": (_rename_system("spin_glass", "spin glass"), ["systems", "'spin glass'"]),
    "system name that starts with a digit": (_rename_system("ising_j2", "2d_ising"), ["systems", "'2d_ising'"]),
    "alloy name that is no file name": (lambda c: c["alloys"].update({"cu-au": c["alloys"].pop("cuau")}),
                                        ["alloys", "'cu-au'"]),
    "unknown model": (_set("systems.ising.model", "potts"), ["systems.ising.model", "'potts'"]),
    "field of another model": (_set("systems.ising.coupling_seed", 3), ["systems.ising.coupling_seed", "'ising'"]),
    "alloy given to a spin model": (_set("systems.ising.alloy", "cuau"), ["systems.ising.alloy", "'ising'"]),
    "system without its MCMC block": (_drop("systems.ising_j2.mcmc"), ["systems.ising_j2.mcmc", "missing"]),
    "system without a training cell": (_drop("systems.spin_glass.train_size"), ["systems.spin_glass", "'train_size'"]),
    # compositions and ensembles
    "composition the training cell cannot hold": (_set("systems.cuau.concentration", 0.3),
                                                  ["systems.cuau.train_size", "[2, 2, 4]", "concentration 0.3", "4.8"]),
    "composition the transfer cell cannot hold": (_set("systems.cuau.transfer_sizes", [[1, 1, 1]]),
                                                  ["systems.cuau.transfer_sizes[0]", "[1, 1, 1]", "concentration 0.5"]),
    "composition above 1": (_set("systems.cuau.concentration", 1.5), ["systems.cuau.concentration", "1.5"]),
    "dmu in a canonical run": (_set("systems.cuau.dmu", 0.1), ["systems.cuau.dmu", "0.1", "semi_grand"]),
    "concentration in a semi-grand run": (_edits(_set("systems.cuau.ensemble", "semi_grand"),
                                                 _set("systems.cuau.mcmc.move", "flip")),
                                          ["systems.cuau.concentration", "0.5", "canonical"]),
    "canonical run without composition": (_drop("systems.cuau.concentration"), ["systems.cuau.concentration", "missing"]),
    "unknown ensemble": (_set("systems.cuau.ensemble", "nvt"), ["systems.cuau.ensemble", "'nvt'"]),
    "swap moves in a semi-grand run": (_edits(_drop("systems.cuau.concentration"),
                                              _set("systems.cuau.ensemble", "semi_grand"),
                                              _set("systems.cuau.mcmc.move", "swap")),
                                       ["systems.cuau.mcmc.move", "'swap'", "semi_grand"]),
    "flip moves in a canonical run": (_set("systems.cuau.mcmc.move", "flip"),
                                      ["systems.cuau.mcmc.move", "'flip'", "canonical"]),
    "Wolff moves on a spin glass": (_set("systems.spin_glass.mcmc.move", "wolff"),
                                    ["systems.spin_glass.mcmc.move", "'wolff'", "ferromagnetic ising"]),
    "Wolff moves in a field": (_set("systems.ising_j2.h", 0.5), ["systems.ising_j2.mcmc.move", "'wolff'", "zero-field"]),
    "burn-in as long as the run": (_set("systems.ising.mcmc.burn_in", 200),
                                   ["systems.ising.mcmc.sweeps = 200", "burn_in = 200", "records 0"]),
    "fewer recorded sweeps than the error analysis needs": (_set("systems.cuau.mcmc.sweeps", 100),
                                                            ["systems.cuau.mcmc.sweeps = 100", "burn_in = 50", "records 50"]),
    # alloys
    "database route without a database": (_set("alloys.cuau.source", "database"), ["alloys.cuau.database", "None"]),
    "missing database": (lambda c: c["alloys"]["cuau"].update(source="database", database="no/such.db"),
                         ["alloys.cuau.database", "'no/such.db'"]),
    "database given to another source": (_set("alloys.cuau.database", "data/fecr.db"),
                                         ["alloys.cuau.database", "'data/fecr.db'", "published"]),
    "unknown CE source": (_set("alloys.cuau.source", "dft"), ["alloys.cuau.source", "'dft'"]),
    "alloy of one element": (_set("alloys.cuau.species", ["Cu", "Cu"]), ["alloys.cuau", "['Cu', 'Cu']"]),
    "alloy of no element": (_set("alloys.cuau.species", ["Cu", "Xx"]), ["alloys.cuau", "['Xx']"]),
    "system naming an unknown alloy": (_set("systems.cuau.alloy", "cuag"), ["systems.cuau.alloy", "'cuag'", "['cuau']"]),
    "cluster expansion without its alloy": (_drop("systems.cuau.alloy"), ["systems.cuau.alloy", "missing"]),
    "phase diagram of an unknown alloy": (_set("phase_diagram.alloy", "cuag"), ["phase_diagram.alloy", "'cuag'", "['cuau']"]),
    "alloy system without any alloys": (_drop("alloys"), ["systems.cuau.alloy", "'cuau'", "[]"]),
    # cells and lattices
    "transfer size that does not repeat the training cell": (_set("systems.ising.transfer_sizes", [[6, 6]]),
                                                             ["systems.ising.transfer_sizes[0]", "[6, 6]"]),
    "size of zero": (_set("systems.ising.train_size", [0, 4]), ["systems.ising.train_size[0]", "0"]),
    "10^6 sites": (_set("systems.ising.transfer_sizes", [[1000, 1000]]),
                   ["systems.ising.transfer_sizes[0]", "[1000, 1000]", "1000000 sites"]),
    "transformer on a cell too large for its distance tables": (_set("systems.ising.transfer_sizes", [[128, 128]]),
                                                                ["systems.ising", "[128, 128]", "16384 sites", "['mam']"]),
    "geometric transformer on a system without a lattice": (_set("systems.sk", SK),
                                                            ["models.mam.n_freq", "systems.sk", "no lattice"]),
    "patch that does not tile a cell": (_set("models.mam.patch", [3, 3]),
                                        ["models.mam.patch = [3, 3]", "does not tile the 4x4 cell", "systems.ising"]),
    "patch with too large a vocabulary": (_set("models.mam.patch", [8, 8]), ["models.mam.patch = [8, 8]", "at most 16 sites"]),
    "patch physics on a cluster expansion": (_edits(_set("models.patched", {"kind": "transformer", "patch": [1, 1, 2],
                                                                           "physics_logits": True}),
                                                    _set("systems.cuau.neural_models", ["patched"])),
                                             ["models.patched.patch = [1, 1, 2]", "pair model", "systems.cuau"]),
    "tempering ladder smaller than its grid": (_set("systems.spin_glass.mcmc.rungs", 3),
                                               ["systems.spin_glass.mcmc.rungs = 3", "cannot hold the", "mcmc.temperatures"]),
    "tempering ladder on a model without tempering": (_set("systems.ising.mcmc.rungs", 8),
                                                      ["systems.ising.mcmc.rungs = 8", "spin glasses only", "'ising'"]),
    "3D size for the square lattice": (_set("systems.ising.train_size", [4, 4, 4]), ["systems.ising.train_size", "[4, 4, 4]"]),
    "unknown lattice": (_set("systems.cuau.lattice", "hcp"), ["systems.cuau.lattice", "'hcp'"]),
    "lattice the model does not take": (_set("systems.spin_glass.lattice", "fcc"), ["systems.spin_glass.lattice", "'fcc'"]),
    "alloy cell of another lattice": (_set("systems.cuau.lattice", "bcc"), ["systems.cuau.lattice", "'bcc'", "'fcc'"]),
    "phase-diagram cell of another lattice": (_set("phase_diagram.lattice", "bcc_cubic"),
                                              ["phase_diagram.lattice", "'bcc_cubic'", "'fcc'"]),
    "phase-diagram composition the cell cannot hold": (_set("phase_diagram.concentrations", [0.25, 0.3]),
                                                        ["phase_diagram.concentrations[1]", "0.3"]),
    "canonical scan too short for error analysis": (_set("phase_diagram.sweeps", 150),
                                                    ["phase_diagram.sweeps - burn_in = 118", "128"]),
    "semi-grand scan too short for error analysis": (_set("phase_diagram.semi_grand_burn_in", 40),
                                                     ["phase_diagram.semi_grand_sweeps - semi_grand_burn_in = 120", "128"]),
    "semi-grand temperature without F(x, T)": (_set("phase_diagram.semi_grand_temperatures", [500.0, 650.0]),
                                               ["phase_diagram.semi_grand_temperatures[1]", "650.0", "temperatures"]),
    "VCSGC temperature without F(x, T)": (_set("phase_diagram.vcsgc_temperatures", [500.0, 650.0]),
                                          ["phase_diagram.vcsgc_temperatures[1]", "650.0", "temperatures"]),
    "VCSGC kappa of zero": (_set("phase_diagram.vcsgc_kappa", 0.0), ["phase_diagram.vcsgc_kappa", "0.0"]),
    "VCSGC scan of two phis": (_set("phase_diagram.vcsgc_phi_count", 2), ["phase_diagram.vcsgc_phi_count", "2"]),
    "VCSGC scan too short for error analysis": (_set("phase_diagram.vcsgc_burn_in", 200),
                                                ["phase_diagram.vcsgc_sweeps - vcsgc_burn_in", "128"]),
    "VCSGC temperatures not a list": (_set("phase_diagram.vcsgc_temperatures", 500.0),
                                      ["phase_diagram.vcsgc_temperatures", "500.0"]),
    "one dmu cannot be swept both ways": (_set("phase_diagram.dmus", [0.0, 0.0]), ["phase_diagram.dmus", "[0.0, 0.0]"]),
    "phase-diagram steps_per_site (mchammer's, now sweeps)": (_set("phase_diagram.steps_per_site", 200),
                                                             ["phase_diagram", "steps_per_site"]),
    # neural samplers
    "model without a section": (_set("neural.models", ["mam", "rnn"]), ["neural.models[1]", "'rnn'"]),
    "key of another model kind": (_set("models.mam.hidden", 64), ["models.mam.hidden", "'transformer'"]),
    "unknown model kind": (_set("models.mam.kind", "rnn"), ["models.mam.kind", "'rnn'"]),
    "system training a model without a section": (_set("systems.ising.neural_models", ["made", "rnn"]),
                                                  ["systems.ising.neural_models[1]", "'rnn'", "['made', 'mam']"]),
    "phase diagram without a transition window": (_set("phase_diagram.transition_temperatures", []),
                                                  ["phase_diagram.transition_temperatures", "heating_concentrations"]),
    "branch too short for error analysis": (_set("phase_diagram.branch_sweeps", 150),
                                            ["phase_diagram.branch_sweeps - branch_burn_in = 100", "128"]),
    "trained temperature off the evaluation grid": (_set("systems.ising.neural_temperatures", [2.5]),
                                                    ["systems.ising.neural_temperatures[0]", "2.5"]),
    "system training setting of an unknown name": (_set("systems.ising.training", {"refine_sweep": 4}),
                                                    ["systems.ising.training", "refine_sweep"]),
    "system training batch too small": (_set("systems.ising.training", {"batch_size": 1}),
                                        ["systems.ising.training.batch_size", "1"]),
    "system training without neural runs": (_set("systems.ising_j2.training", {"steps": 10}),
                                            ["systems.ising_j2.training", "neural_temperatures"]),
    "training shards of zero": (_set("training.shards", 0), ["training.shards", "0"]),
    "training batch not split evenly into shards": (_set("training.shards", 3),
                                                    ["systems.ising:", "batch_size = ", "shards = 3", "neural.conditioned"]),
    # neural F(x, T)
    "neural fine-tuning rate of zero": (_set("neural_phase_diagram.finetune_lr", 0), ["neural_phase_diagram.finetune_lr", "0"]),
    "neural grid composition the training cell cannot hold": (_set("neural_phase_diagram.concentrations", [0.25, 0.3]),
                                                              ["neural_phase_diagram.concentrations[1]", "0.3"]),
    "neural grid temperature off its MCMC scan": (_set("neural_phase_diagram.temperatures", [800.0, 1000.0]),
                                                  ["neural_phase_diagram.temperatures[1]", "1000.0"]),
    "neural grid with one composition (nothing to condition on)": (_set("neural_phase_diagram.concentrations", [0.5]),
                                                                   ["neural_phase_diagram.concentrations", "[0.5]"]),
    "neural grid model that is not a transformer": (_set("neural_phase_diagram.model", "made"),
                                                    ["neural_phase_diagram.model", "'made'"]),
    "neural grid alloy without a section": (_set("neural_phase_diagram.alloy", "agpd"),
                                            ["neural_phase_diagram.alloy", "'agpd'"]),
    "neural transfer cell not a multiple": (_set("neural_phase_diagram.transfer_size", [3, 2, 8]),
                                            ["neural_phase_diagram.transfer_size", "[3, 2, 8]"]),
    "neural ESS threshold above 1": (_set("neural_phase_diagram.ess_threshold", 2.0),
                                     ["neural_phase_diagram.ess_threshold", "2.0"]),
    "trained systems without a neural section": (_drop("neural"), ["neural", "missing", "['ising', 'spin_glass', 'sk', 'cuau']"]),
    "trained systems without a training section": (_drop("training"), ["training", "missing", "['ising', 'spin_glass', 'sk', 'cuau']"]),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_malformed_config_is_refused_naming_field_and_value(case):
    edit, expected = BAD_CONFIGS[case]
    config = copy.deepcopy(TINY)
    edit(config)
    with pytest.raises(ConfigError) as info:
        check_workflow_config(config)
    message = str(info.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, f"{case}: {text!r} not in {message!r}"


def test_every_shipped_config_passes():
    for name in ["config.yaml", "config/tiny.yaml", "config/paper.yaml"]:
        check_workflow_config(yaml.safe_load((ROOT / name).read_text()))


def test_checked_config_holds_every_block_with_its_defaults():
    """The rules read the checked config: every system, alloy and section complete."""
    config = copy.deepcopy(TINY)
    check_workflow_config(config)
    assert list(config["systems"]) == ["ising", "ising_j2", "spin_glass", "sk", "cuau"]  # blocks, not their samples
    assert config["systems"]["sk"]["disorder_samples"] == 2
    j2 = config["systems"]["ising_j2"]
    assert j2["transfer_sizes"] == [] and j2["neural_temperatures"] == [] and j2["h"] == 0.0
    assert j2["mcmc"] == {"temperatures": [40.0, 12.0, 6.4, 5.2, 4.538, 4.0], "move": "wolff", "chains": 16,
                          "sweeps": 200, "burn_in": 50, "rungs": None}
    assert config["systems"]["spin_glass"]["mcmc"]["move"] is None  # the ensemble's natural move, flip
    assert config["alloys"]["cuau"]["lattice"] == "fcc" and config["alloys"]["cuau"]["database"] is None
    assert config["phase_diagram"]["chains"] == 16 and config["phase_diagram"]["hull_tolerance"] == 1.0e-4
    assert config["phase_diagram"]["semi_grand_temperatures"] == [500.0, 800.0]
    assert config["training"]["checkpoint_every"] == 100 and config["training"]["shards"] == 1
    assert config["systems"]["ising"]["training"] is None and config["exact"] == {"enumerate_max_sites": 16}
    neural = config["neural_phase_diagram"]
    assert neural["ess_threshold"] == 0.01 and neural["lattice"] == "fcc" and neural["mcmc"]["move"] is None


def snakemake(workdir, config, *args):
    (workdir / "my.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run([SNAKEMAKE, *args, "--cores", "1", "--configfile", "my.yaml"], capture_output=True,
                          text=True, cwd=workdir)


def test_snakemake_prints_one_line_and_runs_no_job(workdir):
    config = copy.deepcopy(TINY)
    config["systems"]["cuau"]["concentration"] = 0.3
    result = snakemake(workdir, config)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]], out
    assert errors[0].startswith("error: systems.cuau.train_size = [2, 2, 4]: concentration 0.3 gives 4.8"), out
    assert "Traceback" not in out and "File " not in out
    assert not (workdir / "results").exists()


def test_configfile_replaces_the_default_config(workdir):
    """Keys the user leaves out take the schema's defaults, not config.yaml's values."""
    config = copy.deepcopy(TINY)
    del config["systems"]["ising"]["transfer_sizes"]
    config["models"]["mam"] = {"kind": "made", "hidden": 32}  # merged with config.yaml's mam, d_model would be foreign
    config["neural_phase_diagram"]["model"] = "mam_ising"  # mam is no transformer now
    config["models"]["mam_ising"] = TINY["models"]["mam"]
    result = snakemake(workdir, config, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    dry = snakemake(workdir, config, "-n", "-p")
    assert dry.returncode == 0, dry.stderr
    assert "results/references/ising/mcmc_4x4.csv" in dry.stdout
    assert "ising/exact_8x8" not in dry.stdout and "ising/mcmc_8x8" not in dry.stdout
    assert "transfer_8x8" not in dry.stdout
    assert "results/neural/ising/mam/T2.269" in dry.stdout
    # the systems are tiny.yaml's, not config.yaml's merged with them
    assert "results/references/ising_j2/mcmc_6x6.csv" in dry.stdout and "cuau/mcmc_4x4x4" not in dry.stdout


def test_kaufman_reference_uses_the_config_coupling(workdir):
    """With J = 2, the workflow's Kaufman reference of the 4x4 cell is enumeration's at J = 2
    (the rule once passed no J)."""
    config = copy.deepcopy(TINY)
    config["systems"]["ising"]["J"] = 2.0
    result = snakemake(workdir, config, "results/references/ising/exact_4x4.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    kaufman = pd.read_csv(workdir / "results/references/ising/exact_4x4.csv").sort_values("beta")
    assert set(kaufman.method) == {"kaufman"} and len(kaufman) >= 6
    enumeration = exact_thermo(Ising(make_lattice("square", 4), J=2.0), kaufman.beta.to_numpy())
    np.testing.assert_allclose(kaufman.beta.to_numpy(), 1 / kaufman.temperature.to_numpy(), rtol=1e-15)
    assert kaufman.free_energy.to_numpy() == pytest.approx(enumeration.free_energy.to_numpy(), rel=1e-12)
