"""Free energies of an MCMC temperature scan by the multistate Bennett acceptance ratio (MBAR).

MBAR (Shirts & Chodera 2008; the ``pymbar`` package) pools every recorded sample of every
temperature of a scan. With reduced potentials u_k(x) = beta_k E(x) it solves for the
dimensionless free energies f_k = -ln(Z_k / Z_0) relative to the beta = 0 state, whose ln Z_0 is
known exactly (N ln 2, or ln C(N, n) in the canonical ensemble), so

    ln Z_k = ln Z_0 - f_k,    F_k = -ln Z_k / beta_k.

Unlike thermodynamic integration of <E>(beta) on the scan's grid it has no quadrature error;
its accuracy is limited by the samples and by the energy overlap of neighbouring temperatures.

Error bars: the records within a chain are correlated, so each temperature's chains are thinned
by the statistical inefficiency g = 2 tau_int of their energy series; MBAR then sees nearly
independent samples (and runs faster). A scan's error bar is the larger of MBAR's asymptotic one
and the jackknife over its chains (:func:`jackknife_error`): the asymptotic covariance assumes
independent records, which parallel tempering breaks (the same walkers visit every temperature,
and the energy's tau_int at one temperature misses the slow walk along the ladder: over 24 scans
of 4x4 EA its z-scores had an rms of 1.7), as do chains stuck in ordered domains below a
first-order T_c (2.5x too small on 256-site CuAu at x = 0.5). Chain c of every temperature is one
independent run (with exchange: one ladder), so leaving it out everywhere captures every
correlation within it. Both bars are tested against exact answers.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math

import numpy as np
import pandas as pd

from lattherm.errors import LatthermError
from lattherm.mcmc.analysis import integrated_autocorr_time
from lattherm.mcmc.integration import free_energy_table, reference_log_z, scan_counts

SAMPLE_COLUMNS = ("beta", "chain", "energy")
JACKKNIFE_GROUPS = 16


def thinned_chains(energies: np.ndarray) -> np.ndarray:
    """Every g-th record of each chain (B, T), g = ceil(2 tau_int) of the chains' energy."""
    stride = max(1, math.ceil(2 * integrated_autocorr_time(energies)))
    return energies[:, ::stride]


def _mbar(betas: np.ndarray, chains: list[np.ndarray]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import pymbar  # prints a JAX advert and a timeseries warning on import

    logging.getLogger("pymbar").setLevel(logging.ERROR)  # it logs every solver iteration
    energies = np.concatenate([c.ravel() for c in chains])
    # BAR between neighbouring states as the starting point: 20x fewer solver iterations than zeros
    return pymbar.MBAR(np.outer(betas, energies), np.array([c.size for c in chains]), solver_protocol="robust",
                       initialize="BAR")


def mbar_log_z(betas: np.ndarray, chains: list[np.ndarray], log_z0: float,
               over_chains: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """ln Z and its error at each beta, state 0 the reference whose ln Z is ``log_z0`` (beta = 0 in
    a scan from T = inf), from each temperature's thinned energy records. The error is MBAR's
    asymptotic one, valid for independent records; with ``over_chains`` (records (B, T_k) of B
    independent runs, row c of every temperature from run c) the larger of it and the
    :func:`jackknife_error` over the runs, which also holds where records are correlated beyond
    what thinning removes, while the larger of the two guards against the jackknife's own noise
    (16 groups: 15 degrees of freedom) where they are not."""
    mbar = _mbar(betas, chains)
    result = mbar.compute_free_energy_differences()
    error = result["dDelta_f"][0]
    if over_chains:
        error = np.maximum(error, jackknife_error(betas, chains, mbar.f_k))
    return log_z0 - result["Delta_f"][0], error


def jackknife_error(betas: np.ndarray, chains: list[np.ndarray], f_k: np.ndarray) -> np.ndarray:
    """The delete-a-group jackknife error of ln Z at each beta over up to :data:`JACKKNIFE_GROUPS`
    groups of the B independent runs whose thinned records ``chains`` (B, T_k) are, given MBAR's
    full solution ``f_k``. Each group is left out of every temperature in turn and MBAR re-solved
    by one Newton step from the full solution: 1/16 of the data moves it so little that the step
    lands within ~1e-3 of the shift of a full re-solve (tested), at a tenth of its cost."""
    from pymbar.mbar_solvers import mbar_gradient, mbar_hessian  # after _mbar, which silences its import

    n_runs = {c.shape[0] for c in chains}
    if len(n_runs) != 1 or min(n_runs) < 2:
        raise LatthermError(f"a jackknife over chains needs the same number (>= 2) at every temperature, got {sorted(n_runs)}")
    (runs,) = n_runs
    groups = np.array_split(np.arange(runs), min(runs, JACKKNIFE_GROUPS))
    left_out = []
    for group in groups:
        kept = [np.delete(c, group, axis=0) for c in chains]
        u_kn, n_k = np.outer(betas, np.concatenate([c.ravel() for c in kept])), np.array([c.size for c in kept])
        # f_0 stays: the objective ignores a common shift of f, so its Hessian is singular along it
        step = np.linalg.solve(mbar_hessian(u_kn, n_k, f_k)[1:, 1:], mbar_gradient(u_kn, n_k, f_k)[1:])
        left_out.append(f_k[1:] - step - f_k[0])
    left_out, g = np.array(left_out), len(groups)
    return np.concatenate([[0.0], np.sqrt((g - 1) / g * ((left_out - left_out.mean(axis=0)) ** 2).sum(axis=0))])


def mbar_scan(data: pd.DataFrame, samples: pd.DataFrame, source: str) -> pd.DataFrame:
    """The free energies of a scan table (``beta``, one ``n_sites`` and, if canonical, one
    ``n_ones``) from its recorded energies (``samples``: beta, chain, energy, in record order),
    next to the scan's own columns; the same columns as :func:`integrate_scan` gives."""
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise LatthermError(f"samples of {source} lack column(s) {missing}")
    data = data.sort_values("beta").reset_index(drop=True)
    n_sites, n_ones = scan_counts(data, source)
    betas = data.beta.to_numpy(np.float64)
    if betas[0] != 0.0:
        raise LatthermError(f"scan {source} must start at beta = 0 (T = inf), where ln Z is known; got {betas[0]}")
    chains = []
    for beta, group in samples.groupby("beta", sort=True):
        per_chain = [g.energy.to_numpy(np.float64) for _, g in group.groupby("chain", sort=True)]
        if len({len(c) for c in per_chain}) != 1:
            raise LatthermError(f"samples of {source} at beta = {beta} have chains of unequal length")
        chains.append(thinned_chains(np.stack(per_chain)))
    sample_betas = np.sort(samples.beta.unique())
    if len(sample_betas) != len(betas) or not np.allclose(sample_betas, betas, rtol=1e-12, atol=0):
        raise LatthermError(f"samples of {source} are at betas {sample_betas.tolist()}, the scan at {betas.tolist()}")
    log_z, log_z_err = mbar_log_z(betas, chains, reference_log_z(n_sites, n_ones), over_chains=True)
    return free_energy_table(data, log_z, log_z_err, source, estimator="mbar")
