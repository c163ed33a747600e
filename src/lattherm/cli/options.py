"""Command-line values shared by the stage commands: the system a command works on.

A system is given as its config block (a YAML or JSON file with the fields of
:class:`lattherm.systems.SystemConfig`, named after the file), a cell size (default: its
training cell) and, for a cluster expansion, the directory holding the alloys' CE files
(``ALLOY.json``, as ``lattherm ce fit`` writes them).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import typer

from lattherm.errors import LatthermError
from lattherm.lattices import parse_size
from lattherm.systems import System, load_system

SYSTEM = typer.Option(..., help="System block (YAML or JSON, fields of lattherm.systems.SystemConfig).")
SIZE = typer.Option(None, help="Cell size, e.g. 8x8 or 2x2x4 (default: the system's train_size).")
ALLOYS = typer.Option(Path("results/ce"), help="Directory of the alloys' CE files, ALLOY.json.")
TABLE_OUT = typer.Option(..., help="Output table (.csv or .parquet).")
TEMPERATURES = typer.Option(None, help="Temperatures, e.g. '2.0,2.269' (default: the training temperature, or a "
                            "conditioned model's trained range of the system's temperatures).")


def parse_temperatures(text: Optional[str]) -> Optional[list[float]]:
    """Positive numbers separated by commas or spaces (None stays None)."""
    return parse_numbers(text, "--temperatures", lambda v: v > 0, "a positive number")


def parse_concentrations(text: Optional[str]) -> Optional[list[float]]:
    """Fractions of species 1 strictly between 0 and 1, separated by commas or spaces."""
    return parse_numbers(text, "--concentrations", lambda v: 0 < v < 1, "a fraction between 0 and 1")


def parse_numbers(text: Optional[str], option: str, valid, what: str) -> Optional[list[float]]:
    """Finite numbers separated by commas or spaces, each ``valid`` (None stays None)."""
    if text is None:
        return None
    values = []
    for token in [t for t in re.split(r"[,\s]+", text.strip()) if t]:
        try:
            value = float(token)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and valid(value)):
            raise LatthermError(f"{option} value {token!r} is not {what}")
        values.append(value)
    if not values:
        raise LatthermError(f"{option} is empty; give numbers separated by commas or spaces")
    return values


def system_from(path: Path, size: Optional[str], alloys: Path) -> System:
    """The system of a block file on a cell, its CE (if any) read from ``alloys``."""
    from lattherm.systems import load_system_config

    config = load_system_config(path)
    ce_file = alloys / f"{config.alloy}.json" if config.alloy is not None else None
    return load_system(path, None if size is None else parse_size(size), ce_file)
