"""The workflow config is checked once, up front: a table of malformed configs, each refused with
one line naming the field and its value, before any job; --configfile replaces config.yaml; the
Kaufman reference uses the config's J."""

import copy
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lattherm.config import ConfigError, check_workflow_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())


def _set(path, value):
    def edit(config):
        *parents, key = path.split(".")
        section = config
        for name in parents:
            section = section[name]
        section[key] = value
    return edit


def _drop(path):
    def edit(config):
        *parents, key = path.split(".")
        section = config
        for name in parents:
            section = section[name]
        del section[key]
    return edit


def _semi_grand(config):
    config["cuau"].update(ensemble="semi_grand", move="flip")


# (edit, text the one-line error must contain: the field and the offending value)
BAD_CONFIGS = {
    "nan temperature": (_set("ising.temperatures", [2.0, math.nan]), ["ising.temperatures[1]", "nan"]),
    "1e400 temperature": (_set("cuau.temperatures", [450.0, 1e400]), ["cuau.temperatures[1]", "inf"]),
    "nan trained temperature (tag Tnan)": (_set("neural.temperatures.ising", [math.nan]), ["neural.temperatures.ising[0]", "nan"]),
    "empty temperature list": (_set("ising.temperatures", []), ["ising.temperatures", "[]"]),
    "negative temperature": (_set("ising.reference_temperatures", [2.0, -1.0]), ["ising.reference_temperatures[1]", "-1.0"]),
    "zero temperature": (_set("ising.temperatures", [0.0]), ["ising.temperatures[0]", "0.0"]),
    "boolean temperature": (_set("ising.temperatures", [True]), ["ising.temperatures[0]", "True"]),
    "wrong type": (_set("training.steps", "many"), ["training.steps", "'many'"]),
    "J not a number": (_set("ising.J", "one"), ["ising.J", "'one'"]),
    "unknown key": (_set("training.learning_rat", 0.1), ["training", "learning_rat"]),
    "unknown top-level section": (_set("isnig", {}), ["isnig"]),
    "composition the training cell cannot hold": (_set("cuau.concentration", 0.3), ["cuau.concentration", "0.3", "4.8"]),
    "composition the transfer cell cannot hold": (_set("cuau.transfer_sizes", [[1, 1, 1]]), ["cuau.transfer_sizes[0]", "[1, 1, 1]"]),
    "dmu in a canonical run": (_set("cuau.dmu", 0.1), ["cuau.dmu", "0.1", "canonical"]),
    "concentration in a semi-grand run": (_semi_grand, ["cuau.concentration", "0.5", "semi_grand"]),
    "canonical run without composition": (_drop("cuau.concentration"), ["cuau.concentration", "missing"]),
    "swap moves in a semi-grand run": (lambda c: (_drop("cuau.concentration")(c), c["cuau"].update(ensemble="semi_grand")),
                                       ["cuau.move", "'swap'"]),
    "database route without a database": (_set("ce.source", "database"), ["ce.database", "None"]),
    "missing database": (lambda c: c["ce"].update(source="database", database="no/such.db"), ["ce.database", "'no/such.db'"]),
    "database given to another source": (_set("ce.database", "data/fecr.db"), ["ce.database", "'data/fecr.db'", "published"]),
    "unknown CE source": (_set("ce.source", "dft"), ["ce.source", "'dft'"]),
    "model without a section": (_set("neural.models", ["mam", "rnn"]), ["neural.models", "'rnn'"]),
    "key of another model kind": (_set("models.mam.hidden", 64), ["models.mam.hidden", "'transformer'"]),
    "unknown model kind": (_set("models.mam.kind", "rnn"), ["models.mam.kind", "'rnn'"]),
    "unknown neural system": (_set("neural.systems", ["ising", "potts"]), ["neural.systems[1]", "'potts'"]),
    "trained temperature off the evaluation grid": (_set("neural.temperatures.ising", [2.5]), ["neural.temperatures.ising[0]", "2.5"]),
    "trained system without temperatures": (_drop("neural.temperatures.cuau"), ["neural.temperatures.cuau", "missing"]),
    "transfer size that does not repeat the training cell": (_set("ising.transfer_sizes", [[6, 6]]), ["ising.transfer_sizes[0]", "[6, 6]"]),
    "size of zero": (_set("ising.train_size", [0, 4]), ["ising.train_size[0]", "0"]),
    "10^6 sites": (_set("ising.transfer_sizes", [[1000, 1000]]), ["ising", "[1000, 1000]", "1000000 sites"]),
    "transformer on a cell too large for its distance tables": (_set("ising.transfer_sizes", [[128, 128]]),
                                                                ["ising", "[128, 128]", "16384 sites", "['mam']"]),
    "3D size for the square lattice": (_set("ising.train_size", [4, 4, 4]), ["ising.train_size", "[4, 4, 4]"]),
    "unknown lattice": (_set("cuau.lattice", "hcp"), ["cuau.lattice", "'hcp'"]),
    "alloy cell of another lattice": (_set("cuau.lattice", "bcc"), ["cuau.lattice", "'bcc'", "'fcc'"]),
    "burn-in as long as the run": (_set("references.mcmc.burn_in", 200), ["references.mcmc.burn_in", "200"]),
    "mchammer composition the cell cannot hold": (_set("references.mchammer.concentrations", [0.25, 0.3]),
                                                   ["references.mchammer.concentrations[1]", "0.3"]),
    "negative seed": (_set("seed", -1), ["seed", "-1"]),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_malformed_config_is_refused_naming_field_and_value(case):
    edit, expected = BAD_CONFIGS[case]
    config = copy.deepcopy(TINY)
    edit(config)
    with pytest.raises(ConfigError) as info:
        check_workflow_config(config, SCHEMA)
    message = str(info.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, f"{case}: {text!r} not in {message!r}"


def test_every_shipped_config_passes():
    for name in ["config.yaml", "config/tiny.yaml", "config/paper.yaml"]:
        check_workflow_config(yaml.safe_load((ROOT / name).read_text()), SCHEMA)


def snakemake(workdir, config, *args):
    (workdir / "my.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run([SNAKEMAKE, *args, "--cores", "1", "--configfile", "my.yaml"], capture_output=True,
                          text=True, cwd=workdir)


def test_snakemake_prints_one_line_and_runs_no_job(workdir):
    config = copy.deepcopy(TINY)
    config["cuau"]["concentration"] = 0.3
    result = snakemake(workdir, config)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith("error: config cuau.concentration = 0.3"), out
    assert "Traceback" not in out and "File " not in out
    assert not (workdir / "results").exists()


def test_configfile_replaces_the_default_config(workdir):
    """Keys the user leaves out take the schema's defaults, not config.yaml's values."""
    config = copy.deepcopy(TINY)
    del config["ising"]["transfer_sizes"]
    config["models"]["mam"] = {"kind": "made", "hidden": 32}
    result = snakemake(workdir, config, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    dry = snakemake(workdir, config, "-n", "-p")
    assert "kaufman_8x8" not in dry.stdout and "transfer_8x8" not in dry.stdout
    assert "results/neural/ising/mam" in dry.stdout


def test_kaufman_reference_uses_the_config_coupling(workdir):
    """With J = 2, Kaufman and enumeration of the 4x4 cell agree (the old rule passed no J)."""
    config = copy.deepcopy(TINY)
    config["ising"]["J"] = 2.0
    result = snakemake(workdir, config, "results/references/ising/kaufman_4x4.csv",
                       "results/references/ising/enumeration_4x4.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    kaufman = pd.read_csv(workdir / "results/references/ising/kaufman_4x4.csv").sort_values("beta")
    enumeration = pd.read_csv(workdir / "results/references/ising/enumeration_4x4.csv").sort_values("beta")
    assert len(kaufman) == len(enumeration) >= 6
    assert kaufman.free_energy.to_numpy() == pytest.approx(enumeration.free_energy.to_numpy(), rel=1e-12)
