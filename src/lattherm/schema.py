"""The configuration schema and the typed config classes built from its blocks.

``config.schema.yaml`` (next to this module) is the one definition of every config block: the
workflow validates its whole config against it, and each typed class (a dataclass whose fields
are exactly one block's properties, with the same defaults) validates a block with
:func:`from_block`. Errors name the field (``systems.ising.J``) and its value, in one line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, TypeVar

from lattherm.errors import LatthermError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

T = TypeVar("T")


class ConfigError(LatthermError):
    """A config value that is wrong by itself or inconsistent with another; names the field."""


@functools.cache
def schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def check_block(block: Any, definition: str | None, where: str) -> None:
    """Validate ``block`` against ``$defs/<definition>`` (the whole schema for None); the error
    names ``where`` followed by the path of the offending field."""
    import jsonschema

    full = schema()
    target = full if definition is None else {"$defs": full["$defs"], "$ref": f"#/$defs/{definition}"}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(target).iter_errors(block))
    if error is not None:
        raise ConfigError(f"{field_name(where, *error.absolute_path) or 'the config'}: {error.message}")
    check_finite(block, where)


def field_name(where: str, *path) -> str:
    """``field_name("systems.ising", "mcmc", "temperatures", 0)`` -> ``systems.ising.mcmc.temperatures[0]``."""
    text = where
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def check_finite(value: Any, where: str) -> None:
    """NaN and overflowing numbers (YAML's .nan, 1e400 -> inf) pass a JSON schema's ranges."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, field_name(where, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_finite(item, field_name(where, i))
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r} is not a finite number")


def from_block(cls: type[T], block: Any, definition: str, where: str, **nested) -> T:
    """The ``cls`` instance of a schema-valid block; ``nested`` builds sub-blocks by field name."""
    check_block(block, definition, where)
    values = dict(block)
    for name, build in nested.items():
        if name in values:
            values[name] = build(values[name], field_name(where, name))
    return cls(**values)


def schema_defaults(cls: type) -> dict[str, Any]:
    """The defaults of a config dataclass, as the schema states them (for the agreement test)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out
