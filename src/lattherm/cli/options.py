"""Command-line values shared by the stage commands: lists of numbers and temperature grids.

Lists are one argument, numbers separated by commas or spaces; they are checked before any
expensive work and a bad value is one :class:`lattherm.errors.LatthermError` naming the option.
"""

from __future__ import annotations

import math
import re
from typing import Optional

import numpy as np

from lattherm.errors import LatthermError


def parse_list(text: str, name: str) -> np.ndarray:
    """Numbers separated by commas or spaces; infinite only where written ``inf`` (1e400 overflows)."""
    tokens = [token for token in re.split(r"[,\s]+", text.strip()) if token]
    if not tokens:
        raise LatthermError(f"{name} is empty; give numbers separated by commas or spaces")
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            value = math.nan
        if math.isnan(value):
            raise LatthermError(f"{name} value {token!r} is not a number")
        if math.isinf(value) and token.lstrip("+-").lower() not in ("inf", "infinity"):
            raise LatthermError(f"{name} value {token} is out of range (it overflows to infinity)")
        values.append(value)
    return np.array(values)


def temperature_grid(temperatures: Optional[str], betas: Optional[str]) -> tuple[np.ndarray, bool]:
    """The checked values of exactly one of --temperatures / --betas, and whether they are betas.

    Temperatures must be positive; ``inf`` (beta = 0, where a thermodynamic integration starts) is
    allowed. Betas must be finite and >= 0. Parsed before any expensive work.
    """
    if (temperatures is None) == (betas is None):
        raise LatthermError("give exactly one of --temperatures and --betas")
    if betas is not None:
        values = parse_list(betas, "--betas")
        bad = values[~(np.isfinite(values) & (values >= 0))]
        if bad.size:
            raise LatthermError(f"--betas value {bad[0]:g} must be finite and >= 0")
        return values, True
    values = parse_list(temperatures, "--temperatures")
    if np.any(values <= 0):
        raise LatthermError(f"--temperatures value {values[values <= 0][0]:g} must be positive (inf allowed)")
    return values, False


def inverse_temperatures(grid: tuple[np.ndarray, bool], to_beta) -> np.ndarray:
    """Betas of a :func:`temperature_grid`; ``to_beta`` converts one temperature."""
    values, are_betas = grid
    return values if are_betas else np.array([to_beta(t) for t in values])
