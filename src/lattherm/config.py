"""The workflow configuration, checked once and up front, before any job runs.

The Snakefile calls :func:`check_workflow_config` on the merged config. It validates against
the JSON schema (types, ranges, unknown keys; Snakemake then fills in the schema's defaults) and
then makes the cross-field checks that a schema cannot express: compositions a cell can hold,
transfer cells that repeat the training cell, ensemble-specific keys, trained temperatures on
the evaluation grid, models that have a section. Each failure is one :class:`ConfigError` that
names the field (``section.key[index]``) and its value.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from lattherm.errors import LatthermError
from lattherm.lattices import MAX_DENSE_SITES, MAX_SITES, cell_sites

MODEL_KEYS = {  # keys of a `models` section that only one model kind reads
    "transformer": {"d_model", "n_layer", "n_head", "mlp_ratio", "n_freq", "n_bias_shells", "attention_shells",
                    "full_penalty", "penalty_fraction", "score"},
    "made": {"hidden", "depth", "residual"},
}


class ConfigError(LatthermError):
    """A workflow config value that is wrong by itself or inconsistent with another."""


def check_workflow_config(config: dict, schema: str | os.PathLike) -> None:
    """Validate ``config`` against ``schema`` (filling in defaults), then the cross-field rules."""
    _check_schema(config, schema)
    _check_finite(config, "")
    _check_ce(config["ce"])
    _check_ising(config["ising"])
    _check_alloy(config)
    _check_references(config)
    _check_neural(config)


def _check_schema(config: dict, schema_path: str | os.PathLike) -> None:
    import jsonschema
    import yaml
    from snakemake.utils import validate

    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(config))
    if error is not None:
        field = _field(error.absolute_path) or "the config"
        raise ConfigError(f"config {field}: {error.message}")
    validate(config, str(schema_path))  # passes now; fills in the schema's defaults


def _field(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _check_finite(value: Any, field: str) -> None:
    """NaN and overflowing numbers (YAML's .nan, 1e400 -> inf) pass a JSON schema's ranges."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{field}.{key}".lstrip("."))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_finite(item, f"{field}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config {field} = {value!r} is not a finite number")


def _check_ce(ce: dict) -> None:
    database = ce.get("database")
    if ce["source"] != "database":
        if database is not None:
            raise ConfigError(f"config ce.database = {database!r} applies to ce.source: database only "
                              f"(ce.source is {ce['source']!r})")
        return
    if not isinstance(database, str) or not database:
        raise ConfigError(f"config ce.database = {database!r}: ce.source: database needs the path of an ASE database")
    if not Path(database).is_file():
        raise ConfigError(f"config ce.database = {database!r}: no such file")


def _check_ising(ising: dict) -> None:
    _check_transfer_sizes("ising", ising)
    for size in [ising["train_size"], *ising["transfer_sizes"]]:
        _check_cell_sites("ising", "square", size)


def _check_alloy(config: dict) -> None:
    alloy, ce_lattice = config["cuau"], config["ce"]["lattice"]
    if not alloy["lattice"].startswith(ce_lattice):
        raise ConfigError(f"config cuau.lattice = {alloy['lattice']!r} is not a cell of ce.lattice = {ce_lattice!r}")
    _check_transfer_sizes("cuau", alloy)
    canonical = alloy["ensemble"] == "canonical"
    if canonical and "dmu" in alloy:
        raise ConfigError(f"config cuau.dmu = {alloy['dmu']!r} applies to the semi_grand ensemble only "
                          "(cuau.ensemble is canonical; set cuau.concentration)")
    if not canonical and "concentration" in alloy:
        raise ConfigError(f"config cuau.concentration = {alloy['concentration']!r} applies to the canonical "
                          "ensemble only (cuau.ensemble is semi_grand; set cuau.dmu)")
    if canonical and "concentration" not in alloy:
        raise ConfigError("config cuau.concentration is missing: the canonical ensemble needs the fraction of "
                          f"{config['ce']['species'][1]}")
    move = alloy["move"]
    if (move == "swap") != canonical:
        raise ConfigError(f"config cuau.move = {move!r} does not suit cuau.ensemble = {alloy['ensemble']!r} "
                          "(canonical needs swap, semi_grand flip)")
    for size in [alloy["train_size"], *alloy["transfer_sizes"]]:
        n = _check_cell_sites("cuau", alloy["lattice"], size)
        if canonical:
            _check_composition("cuau.concentration", alloy["concentration"], n, f"the {size} {alloy['lattice']} cell")


def _check_references(config: dict) -> None:
    mcmc = config["references"]["mcmc"]
    if mcmc["burn_in"] >= mcmc["sweeps"]:
        raise ConfigError(f"config references.mcmc.burn_in = {mcmc['burn_in']} must be smaller than "
                          f"references.mcmc.sweeps = {mcmc['sweeps']}")
    mchammer = config["references"]["mchammer"]
    lattice = mchammer["lattice"]
    if not lattice.startswith(config["ce"]["lattice"]):
        raise ConfigError(f"config references.mchammer.lattice = {lattice!r} is not a cell of "
                          f"ce.lattice = {config['ce']['lattice']!r}")
    n = _check_cell_sites("references.mchammer", lattice, mchammer["size"])
    for i, x in enumerate(mchammer["concentrations"]):
        _check_composition(f"references.mchammer.concentrations[{i}]", x, n, f"the {mchammer['size']} {lattice} cell")


def _check_neural(config: dict) -> None:
    neural = config["neural"]
    for model in neural["models"]:
        if model not in config["models"]:
            raise ConfigError(f"config neural.models names {model!r}, which has no section under models "
                              f"(models has {sorted(config['models'])})")
    for name, section in config["models"].items():
        foreign = sorted(set(section) & set().union(*MODEL_KEYS.values()) - MODEL_KEYS[section["kind"]])
        if foreign:
            raise ConfigError(f"config models.{name}.{foreign[0]} does not apply to kind {section['kind']!r}")
    transformers = [m for m in neural["models"] if config["models"][m]["kind"] == "transformer"]
    for system in neural["systems"]:
        lattice = "square" if system == "ising" else config[system]["lattice"]
        for size in [config[system]["train_size"], *config[system]["transfer_sizes"]] if transformers else []:
            if cell_sites(lattice, size) > MAX_DENSE_SITES:
                raise ConfigError(f"config {system}: the {size} cell has {cell_sites(lattice, size)} sites; the "
                                  f"transformer models {transformers} hold N x N distance tables, at most "
                                  f"{MAX_DENSE_SITES} sites")
        trained = neural["temperatures"].get(system)
        if trained is None:
            raise ConfigError(f"config neural.temperatures.{system} is missing: neural.systems trains {system!r}")
        grid = config[system]["temperatures"]
        for i, t in enumerate(trained):
            if not any(math.isclose(t, g, rel_tol=1e-9) for g in grid):
                raise ConfigError(f"config neural.temperatures.{system}[{i}] = {t!r} is not on the evaluation grid "
                                  f"{system}.temperatures = {grid}")


def _check_transfer_sizes(system: str, section: dict) -> None:
    """A transferred transformer keeps the rotary periods of its training cell."""
    train = section["train_size"]
    for i, size in enumerate(section["transfer_sizes"]):
        if len(size) != len(train) or any(s % t for s, t in zip(size, train)):
            raise ConfigError(f"config {system}.transfer_sizes[{i}] = {size} does not repeat "
                              f"{system}.train_size = {train} along every axis (each length must be a multiple)")


def _check_cell_sites(field: str, lattice: str, size: list[int]) -> int:
    try:
        n_sites = cell_sites(lattice, size)
    except LatthermError as exc:
        raise ConfigError(f"config {field}: {exc}") from None
    if n_sites > MAX_SITES:
        raise ConfigError(f"config {field}: the {size} {lattice} cell has {n_sites} sites; a system may have at most "
                          f"{MAX_SITES}")
    return n_sites


def _check_composition(field: str, x: float, n_sites: int, cell: str) -> None:
    count = x * n_sites
    if abs(count - round(count)) > 1e-9:
        raise ConfigError(f"config {field} = {x!r} gives {count:g} species-1 sites on {cell} of {n_sites} sites; "
                          "it must give a whole number")
