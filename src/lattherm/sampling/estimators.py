"""Estimators from samples of a normalised model q (science.md §3).

With samples x_k ~ q, k = 1..M, and log-weights ln w_k = -beta E(x_k) - ln q(x_k):

- Z_hat = mean(w) is unbiased for Z; ln Z_hat = logsumexp(ln w) - ln M (a lower bound on
  average). Its error follows from the delta method: sd(ln Z_hat) = sd(w) / (sqrt(M) mean(w)),
  and var(w) / mean(w)^2 = 1 / ESS - 1, so sd(ln Z_hat) = sqrt((1/ESS - 1) / (M - 1)) with the
  unbiased variance. F_IS = -ln Z_hat / beta.
- ESS per sample = (sum w)^2 / (M sum w^2), in (0, 1]; 1 exactly when q = p.
- Pareto k-hat (PSIS; Vehtari, Simpson, Gelman, Yao, Gabry, JMLR 25 (2024) 72): the shape of a
  generalized Pareto distribution fitted to the largest weights. The ESS and the error bar above
  are moments of the weights, estimated from the same weights; above k = 0.7 their tail is so
  heavy that both are unreliable even where the ESS looks fine (k >= 1/2: infinite variance).
- The importance-sampled mean of an observable v, sum w v / sum w (self-normalised), with the
  delta-method error sqrt(sum w^2 (v - mean)^2) / sum w. Where q never draws a region that p
  populates (a phase), no weight can bring it back: the IS energy then disagrees with a
  reference's though the ESS and k-hat look fine.
- Neural MCMC: independent Metropolis-Hastings with proposal q, acceptance
  min(1, w(x') / w(x)); observables are then unbiased for p, with autocorrelation measured
  by the integrated autocorrelation time of the chains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp
from torch import Tensor

from lattherm.mcmc.analysis import integrated_autocorr_time
from lattherm.observables import Observable


def log_weights(energy: Tensor, log_q: Tensor, beta: float | Tensor) -> Tensor:
    """ln w = -beta E - ln q, float64."""
    return -beta * energy.to(torch.float64) - log_q.to(torch.float64)


def ess_per_sample(log_w: Tensor) -> float:
    """(sum w)^2 / (M sum w^2), computed in log space."""
    log_w = _check_log_w(log_w)
    return math.exp(2 * torch.logsumexp(log_w, 0).item() - torch.logsumexp(2 * log_w, 0).item() - math.log(len(log_w)))


def log_z_is(log_w: Tensor) -> tuple[float, float]:
    """Importance-sampling ln Z and its delta-method standard error."""
    log_w = _check_log_w(log_w)
    m = len(log_w)
    if m < 2:
        raise ValueError("the ln Z error estimate needs at least 2 samples")
    log_z = torch.logsumexp(log_w, 0).item() - math.log(m)
    ess = ess_per_sample(log_w)
    err = math.sqrt(max(1.0 / ess - 1.0, 0.0) / (m - 1))
    return log_z, err


def free_energy_is(log_w: Tensor, beta: float) -> tuple[float, float]:
    """F_IS = -ln Z_hat / beta (total, not per site) and its standard error."""
    log_z, err = log_z_is(log_w)
    return -log_z / beta, err / beta


PARETO_K_MAX = 0.7
"""Above this Pareto k-hat the importance-sampling error bar cannot be trusted (PSIS)."""


def pareto_k(log_w: Tensor) -> float:
    """PSIS's k-hat: the shape of a generalized Pareto distribution fitted, by Zhang and Stephens'
    (Technometrics 51 (2009) 316) posterior-mean estimator with PSIS's weak prior towards 1/2, to
    the exceedances of the largest M = min(M_total / 5, 3 sqrt(M_total)) weights over the next
    one. -inf where the weights have no tail (all equal: q = p); NaN from fewer than 21 samples
    (a tail of fewer than 5) and where fewer than half the tail's weights are distinct: a state
    space small enough to be sampled over and over (a 16-site cell) has bounded weights whose
    largest are each seen many times, and a continuous tail fitted to those few atoms means
    nothing."""
    log_w = _check_log_w(log_w).numpy()
    tail_size = min(math.ceil(0.2 * len(log_w)), math.ceil(3 * math.sqrt(len(log_w))))
    if tail_size < 5:
        return math.nan
    ordered = np.sort(log_w)
    if ordered[-1] == ordered[-tail_size - 1]:
        return -math.inf
    if len(np.unique(ordered[-tail_size:])) < tail_size / 2:
        return math.nan
    top = ordered[-1]  # weights scaled by the largest: no overflow
    x = np.exp(ordered[-tail_size:] - top) - np.exp(ordered[-tail_size - 1] - top)
    x = x[x > 0]
    n = len(x)
    if n < 5:
        return math.nan
    grid = 30 + int(math.sqrt(n))
    theta = 1 - np.sqrt(grid / (np.arange(1, grid + 1) - 0.5))
    theta = theta / (3 * x[int(n / 4 + 0.5) - 1]) + 1 / x[-1]
    shape = np.log1p(-theta[:, None] * x).mean(axis=1)  # the shape's maximum likelihood at each theta
    profile = n * (np.log(-theta / shape) - shape - 1)
    weights = np.exp(profile - logsumexp(profile))
    keep = weights >= 10 * np.finfo(float).eps
    theta, weights = theta[keep], weights[keep] / weights[keep].sum()
    k = np.log1p(-(theta * weights).sum() * x).mean()
    return float((n * k + 10 * 0.5) / (n + 10))


def importance_mean(log_w: Tensor, values: Tensor) -> tuple[float, float]:
    """The self-normalised importance-sampling mean of ``values`` (one per sample) under p and its
    delta-method standard error."""
    log_w = _check_log_w(log_w)
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if len(values) != len(log_w):
        raise ValueError(f"{len(values)} values for {len(log_w)} log-weights")
    w = torch.softmax(log_w, 0)
    mean = (w * values).sum()
    return mean.item(), torch.sqrt((w**2 * (values - mean) ** 2).sum()).item()


def _check_log_w(log_w: Tensor) -> Tensor:
    log_w = torch.as_tensor(log_w, dtype=torch.float64).reshape(-1)
    if len(log_w) == 0:
        raise ValueError("no samples: log-weights are empty")
    if torch.isnan(log_w).any() or torch.isposinf(log_w).any():
        raise ValueError("log-weights contain NaN or +inf (a sample with q = 0?)")
    return log_w


@dataclass
class NeuralMCMCResult:
    """Chains of shape (n_chains, n_steps) after burn-in, and their statistics."""

    energy: np.ndarray
    observables: dict[str, np.ndarray]
    acceptance: float
    tau_int: dict[str, float]

    def mean_and_error(self, name: str = "energy") -> tuple[float, float]:
        """Mean over all chains and its error sqrt(var * 2 tau_int / n)."""
        chain = self.energy if name == "energy" else self.observables[name]
        n = chain.size
        return float(chain.mean()), float(np.sqrt(chain.var(ddof=1) * 2 * self.tau_int[name] / n))


@torch.no_grad()
def neural_mcmc(
    model,
    hamiltonian,
    beta: float,
    n_chains: int,
    n_steps: int,
    burn_in: int = 0,
    cond: Tensor | None = None,
    n_ones: int | None = None,
    observables: dict[str, Observable] | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 8192,
) -> NeuralMCMCResult:
    """Independent Metropolis-Hastings with the model as proposal.

    Every step proposes a fresh x' ~ q for every chain and accepts with probability
    min(1, w(x') / w(x)), w = exp(-beta E) / q. Proposals do not depend on the chain state, so
    they are drawn ahead in batches of about ``batch_size`` samples (many steps at once) and
    only the accept/reject sweep is sequential. Chains start from a sample of q; ``burn_in``
    steps are dropped from the front. ``cond`` is one row (1, n_cond) shared by all proposals.
    """
    if n_chains < 1 or n_steps < 1 or not 0 <= burn_in < n_steps:
        raise ValueError(f"need n_chains >= 1, n_steps >= 1 and 0 <= burn_in < n_steps; got "
                         f"{n_chains}, {n_steps}, {burn_in}")
    observables = dict(observables or {})
    if "energy" in observables:
        raise ValueError("'energy' is always recorded; do not pass it as an observable")
    device = next(model.parameters()).device
    steps_per_batch = max(1, batch_size // n_chains)

    def proposals(n_rounds: int):
        """n_rounds proposals per chain: x (n_rounds, n_chains, N), E and ln w (n_rounds, n_chains)."""
        n = n_rounds * n_chains
        batch_cond = None if cond is None else cond.to(device).expand(n, -1)
        x, log_q = model.sample(n, cond=batch_cond, n_ones=n_ones, generator=generator)
        e = hamiltonian.energy(x)
        return x.view(n_rounds, n_chains, -1), e.view(n_rounds, n_chains), log_weights(e, log_q, beta).view(n_rounds, n_chains)

    x, e, log_w = (t[0] for t in proposals(1))
    energies, obs_chains, accepted = [], {k: [] for k in observables}, 0
    for first in range(0, n_steps, steps_per_batch):
        rounds = min(steps_per_batch, n_steps - first)
        xs, es, lws = proposals(rounds)
        log_u = torch.log(torch.rand(rounds, n_chains, dtype=torch.float64, device=device, generator=generator))
        for r in range(rounds):
            accept = log_u[r] < (lws[r] - log_w)
            x = torch.where(accept[:, None], xs[r], x)
            e = torch.where(accept, es[r], e)
            log_w = torch.where(accept, lws[r], log_w)
            if first + r >= burn_in:
                accepted += int(accept.sum())
                energies.append(e.cpu())
                for name, fn in observables.items():
                    obs_chains[name].append(fn(x).to(torch.float64).cpu())
    energy = torch.stack(energies, dim=1).numpy()
    obs = {k: torch.stack(v, dim=1).numpy() for k, v in obs_chains.items()}
    # an observable undefined on some sample (Warren-Cowley with one species absent) is NaN
    tau = {k: integrated_autocorr_time(v) if np.all(np.isfinite(v)) else math.nan
           for k, v in {"energy": energy, **obs}.items()}
    return NeuralMCMCResult(energy=energy, observables=obs, acceptance=accepted / energy.size, tau_int=tau)

