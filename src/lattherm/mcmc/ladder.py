"""Parallel-tempering ladders with a flat exchange-acceptance profile.

An exchange between beta and beta + d is accepted with probability that falls with d sigma_E(beta)
(sigma_E the energy fluctuation; for Gaussian energy distributions A = erfc(d sigma_E / 2)), so
rungs equally spaced in the thermodynamic length l(beta) = int sigma_E dbeta are accepted equally
often. :func:`tuned_ladder` measures sigma_E at every rung in short pilot runs and re-places the
rungs uniformly in l, round after round. The grid betas (where results are wanted) stay in the
ladder; the extra rungs go between them, each segment getting as many as keep the largest step
in l smallest.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lattherm.hamiltonians.base import Hamiltonian

__all__ = ["place_rungs", "tuned_ladder"]


def _allocate(lengths: np.ndarray, extra: int) -> np.ndarray:
    """Interior rungs per segment: each of ``extra`` goes, in turn, to the segment whose steps are
    longest (the minimax allocation of the largest step length / (rungs + 1))."""
    counts = np.zeros(len(lengths), dtype=int)
    for _ in range(extra):
        counts[np.argmax(lengths / (counts + 1))] += 1
    return counts


def place_rungs(grid: Sequence[float], betas: Sequence[float], sigma: Sequence[float], n_rungs: int) -> np.ndarray:
    """A ladder of ``n_rungs`` betas holding every ``grid`` beta, equally spaced in thermodynamic
    length within each segment between grid betas, where the length is integrated (trapezoids)
    from the energy fluctuations ``sigma`` measured at the (sorted) ``betas``, which must span
    the grid."""
    grid, betas, sigma = (np.asarray(a, dtype=np.float64) for a in (grid, betas, sigma))
    if n_rungs < len(grid):
        raise ValueError(f"a ladder of {n_rungs} rungs cannot hold the {len(grid)} grid temperatures")
    length = np.concatenate([[0.0], np.cumsum(np.diff(betas) * (sigma[1:] + sigma[:-1]) / 2)])
    at_grid = np.interp(grid, betas, length)
    counts = _allocate(np.diff(at_grid), n_rungs - len(grid))
    rungs = [grid[:1]]
    for k, count in enumerate(counts):
        targets = at_grid[k] + (at_grid[k + 1] - at_grid[k]) * np.arange(1, count + 1) / (count + 1)
        rungs += [np.interp(targets, length, betas), grid[k + 1:k + 2]]
    return np.concatenate(rungs)


def tuned_ladder(hamiltonian: Hamiltonian, grid: Sequence[float], n_rungs: int, n_chains: int, n_sweeps: int,
                 rounds: int = 2, seed: int = 0, **kwargs) -> np.ndarray:
    """``n_rungs`` increasing betas holding the sorted ``grid`` betas, tuned for equal exchange
    acceptance: ``rounds`` pilot runs of parallel tempering (``n_chains`` x ``n_sweeps``, the
    second half of each recorded) measure sigma_E per rung; the first ladder fills the segments
    uniformly in beta. ``kwargs`` go to :func:`lattherm.mcmc.samplers.parallel_tempering`."""
    from lattherm.mcmc.samplers import parallel_tempering

    grid = np.asarray(grid, dtype=np.float64)
    if np.any(np.diff(grid) <= 0):
        raise ValueError(f"the grid betas must be strictly increasing, got {grid}")
    ladder = place_rungs(grid, grid, np.ones_like(grid), n_rungs)
    if n_rungs == len(grid):
        return ladder
    for r in range(rounds):
        result = parallel_tempering(hamiltonian, ladder, n_chains, n_sweeps, seed=seed + r, progress=False,
                                    burn_in=n_sweeps // 2, **kwargs)
        energy = result.series["energy"]
        sigma = np.array([energy[result.group == k].std() for k in range(len(ladder))])
        ladder = place_rungs(grid, ladder, np.maximum(sigma, 1e-12 * (1 + sigma.max())), n_rungs)
    return ladder
