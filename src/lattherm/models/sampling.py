"""The one ancestral sampling loop, written over the :class:`~lattherm.models.base.Autoregressive`
contract, and the random numbers it and the training penalty draw."""

from __future__ import annotations

import torch
from torch import Tensor

from lattherm.models.base import Autoregressive, log_softmax_canonical


@torch.no_grad()
def ancestral_sample(model: Autoregressive, n: int, cond: Tensor | None = None, n_ones: int | None = None,
                     generator: torch.Generator | None = None, order: Tensor | None = None,
                     use_cache: bool = True) -> tuple[Tensor, Tensor]:
    """Draw ``n`` configurations token by token (a site, or a patch of k sites) along ``order``
    (of the tokens); returns x (n, N) int64 and the exact ln q (n,) float64. One uniform per
    configuration and step, whether or not the model caches, so cached and uncached sampling
    give the same samples."""
    if int(n) < 1:
        raise ValueError(f"number of samples must be >= 1, got {n}")
    model.check_n_ones(n_ones)
    state = model.sampling_state(n, cond, order, use_cache)
    N, device = model.n_sites, state.order.device
    patches, values = model.patches.to(device), model.patch_values.to(device)
    value_ones = (values == 1).sum(1)
    x = torch.zeros(n, N, dtype=torch.long, device=device)
    log_q = torch.zeros(n, dtype=torch.float64, device=device)
    ones = torch.zeros(n, dtype=torch.long, device=device)
    for t in range(len(patches)):
        logq_t = log_softmax_canonical(model.next_logits(x, t, state), ones, N - t * patches.shape[1], n_ones, value_ones)
        # inverse cdf; dividing by the total makes the last entry exactly 1, so u < 1 never
        # selects past it and a value of probability 0 is never selected
        cdf = torch.cumsum(logq_t.exp(), dim=-1)
        cdf = cdf / cdf[:, -1:]
        v = (uniform((n, 1), generator, device).to(torch.float64) >= cdf).sum(-1, keepdim=True)
        x.scatter_(1, patches[state.order[:, t]].expand(n, -1), values[v[:, 0]])
        ones += value_ones[v[:, 0]]
        log_q += logq_t.gather(1, v)[:, 0]
    return x, log_q


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device (so a seed gives the same numbers
    whatever device the model is on), moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device if generator else device).to(device)


def random_orders(batch: int, n_sites: int, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> Tensor:
    """Independent uniformly random site orders, (batch, n_sites) int64."""
    return torch.argsort(uniform((batch, n_sites), generator, device), dim=1)
