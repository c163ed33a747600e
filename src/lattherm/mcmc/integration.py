"""Free energies by thermodynamic integration of the mean energy over inverse temperature.

d(ln Z)/d(beta) = -<E>, so on a grid 0 = beta_0 < beta_1 < ... < beta_K

    ln Z(beta_k) = ln Z(0) - integral_0^{beta_k} <E>(b) db,    F = -ln Z / beta,

with ln Z(0) = N ln 2 when every configuration counts (unconstrained or semi-grand: the field
term -dmu sum s vanishes at beta = 0) or ln C(N, n) in the canonical ensemble with n ones.
The quadrature is linear in the energies, ln Z = ln Z(0) - W @ E, so independent energy errors
propagate exactly: var(ln Z_k) = sum_j W_kj^2 err_j^2.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.special import gammaln

from lattherm.errors import LatthermError

METHODS = ("trapezoid", "spline")


def reference_log_z(n_sites: int, n_ones: int | None = None) -> float:
    """ln Z at beta = 0: N ln 2, or ln C(N, n) for the canonical ensemble."""
    if n_sites < 1:
        raise LatthermError(f"n_sites must be positive, got {n_sites}")
    if n_ones is None:
        return n_sites * np.log(2.0)
    if not 0 <= n_ones <= n_sites:
        raise LatthermError(f"n_ones must lie in [0, {n_sites}], got {n_ones}")
    return float(gammaln(n_sites + 1) - gammaln(n_ones + 1) - gammaln(n_sites - n_ones + 1))


def cumulative_weights(betas: np.ndarray, method: str = "spline") -> np.ndarray:
    """Matrix W (K, K) with integral_0^{beta_k} f db = (W @ f)_k for samples f on the grid.

    ``spline``: integral of the not-a-knot cubic spline through the points (exact for cubics);
    ``trapezoid``: the trapezoid rule. Both are linear in f, so W is found by integrating the
    interpolant of each unit vector.
    """
    if method not in METHODS:
        raise LatthermError(f"integration method must be one of {METHODS}, got {method!r}")
    k = len(betas)
    if method == "trapezoid" or k < 4:
        widths = np.diff(betas)
        w = np.zeros((k, k))
        for i in range(1, k):
            w[i] = w[i - 1]
            w[i, i - 1] += widths[i - 1] / 2
            w[i, i] += widths[i - 1] / 2
        return w
    antiderivative = CubicSpline(betas, np.eye(k), axis=0).antiderivative()
    return antiderivative(betas) - antiderivative(betas[0])


def integrate_free_energy(betas: Sequence[float], energies: Sequence[float], n_sites: int,
                          n_ones: int | None = None, energy_errors: Sequence[float] | None = None,
                          method: str = "spline") -> pd.DataFrame:
    """ln Z and F on a beta grid starting at beta = 0 from mean total energies <E>(beta).

    Returns one row per beta > 0 (F is undefined at beta = 0): beta, temperature, log_z,
    log_z_err, free_energy, free_energy_err, free_energy_per_site, free_energy_per_site_err.
    Errors treat the energies at different betas as independent (separate chains).
    """
    betas = np.asarray(betas, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    errors = np.zeros_like(energies) if energy_errors is None else np.asarray(energy_errors, dtype=np.float64)
    if betas.ndim != 1 or betas.shape != energies.shape or errors.shape != betas.shape:
        raise LatthermError(f"betas {betas.shape}, energies {energies.shape} and errors {errors.shape} must be "
                            "1-D of equal length")
    if len(betas) < 2 or betas[0] != 0.0 or not np.all(np.diff(betas) > 0):  # NaN fails too
        raise LatthermError(f"the beta grid must start at 0 and increase strictly, got {betas}")
    if not (np.all(np.isfinite(energies)) and np.all(np.isfinite(errors)) and np.all(errors >= 0)):
        raise LatthermError("energies and errors must be finite, errors non-negative")
    w = cumulative_weights(betas, method)
    log_z = reference_log_z(n_sites, n_ones) - w @ energies
    return _free_energies(betas, log_z, np.sqrt((w**2) @ errors**2), n_sites)


def _free_energies(betas: np.ndarray, log_z: np.ndarray, log_z_err: np.ndarray, n_sites: int) -> pd.DataFrame:
    """Rows beta > 0: beta, temperature, ln Z and F (total and per site) with their errors."""
    table = pd.DataFrame({"beta": betas, "temperature": 1.0 / np.where(betas > 0, betas, np.nan),
                          "log_z": log_z, "log_z_err": log_z_err}).iloc[1:].reset_index(drop=True)
    table["free_energy"] = -table.log_z / table.beta
    table["free_energy_err"] = table.log_z_err / table.beta
    table["free_energy_per_site"] = table.free_energy / n_sites
    table["free_energy_per_site_err"] = table.free_energy_err / n_sites
    return table


def integrate_scan(data: pd.DataFrame, source: str, method: str = "spline") -> pd.DataFrame:
    """The free energies of a scan table (``beta``, ``energy``, ``energy_err``, one ``n_sites``
    and, if canonical, one ``n_ones``) next to the scan's own columns (energies, heat capacities,
    order parameters, the temperature in the system's unit); ``source`` names it in errors."""
    if method not in METHODS:
        raise LatthermError(f"the quadrature method must be one of {METHODS}, got {method!r}")
    text = [c for c in ("beta", "energy", "energy_err") if not pd.api.types.is_numeric_dtype(data[c])]
    if text:
        raise LatthermError(f"table {source} has non-numeric column(s) {text}")
    data = data.sort_values("beta").reset_index(drop=True)
    n_sites, n_ones = scan_counts(data, source)
    result = integrate_free_energy(data.beta, data.energy, n_sites, n_ones=n_ones, energy_errors=data.energy_err,
                                   method=method)
    return _with_scan_columns(result, data, n_ones, estimator=method)


def scan_counts(data: pd.DataFrame, source: str) -> tuple[int, int | None]:
    """The one ``n_sites`` of a scan table and its one ``n_ones`` (None unless canonical)."""
    n_ones = _single_count(data, "n_ones", source) if "n_ones" in data.columns else None
    return _single_count(data, "n_sites", source), n_ones


def free_energy_table(data: pd.DataFrame, log_z: np.ndarray, log_z_err: np.ndarray, source: str,
                      estimator: str) -> pd.DataFrame:
    """ln Z (with errors) at every beta of a scan table sorted by beta from 0, as the free-energy
    table of that scan: its own columns next to ln Z and F, at the rows ``on_grid`` where the
    scan has that column; ``estimator`` names the method."""
    n_sites, n_ones = scan_counts(data, source)
    result = _with_scan_columns(_free_energies(data.beta.to_numpy(np.float64), log_z, log_z_err, n_sites),
                                data, n_ones, estimator)
    if "on_grid" in result.columns:  # rungs a tempering ladder added: they served MBAR, results are on the grid
        result = result[result.on_grid.astype(bool)].reset_index(drop=True)
    return result


def _with_scan_columns(result: pd.DataFrame, data: pd.DataFrame, n_ones: int | None, estimator: str) -> pd.DataFrame:
    scan_columns = data.iloc[1:].reset_index(drop=True)
    scan_columns = scan_columns[[c for c in scan_columns.columns if c not in result.columns or c == "temperature"]]
    result = pd.concat([result.drop(columns="temperature"), scan_columns], axis=1)
    result["free_energy_estimator"] = estimator
    if "ensemble" not in result.columns:
        result.insert(0, "ensemble", "unconstrained" if n_ones is None else "canonical")
    return result


def _single_count(data: pd.DataFrame, column: str, source: str) -> int:
    values = data[column].unique()
    if len(values) != 1:
        raise LatthermError(f"table {source} mixes several {column} values {values.tolist()}")
    if not (pd.api.types.is_number(values[0]) and float(values[0]).is_integer()):
        raise LatthermError(f"table {source} has {column} = {values[0]}; expected a whole number")
    return int(values[0])

