"""MADE: the fixed-order autoregressive MLP baseline (Germain et al. 2015; VAN, Wu-Wang-Zhang 2019).

q(x) = prod_i q(x_i | x_<i) in the lattice's raster site order. One masked MLP gives every
conditional in one pass, so ``log_prob`` costs one pass and ``sample`` costs N passes.

Masks follow MADE's degree construction (0-based): input site j has degree j, each hidden unit
a degree d in {0, ..., N-2} and may see inputs j <= d, hidden-to-hidden connections need
d_out >= d_in, and the output for site i sees hidden units with d < i. Site i's conditional
therefore depends on x_<i only. Conditioning variables (e.g. beta) enter every hidden layer and
the output layer unmasked: they are not sites, so they may inform every conditional.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lattherm.models.base import NeuralSampler, canonical_mask


@dataclass
class MADEConfig:
    """Hyperparameters of :class:`MADE`.

    Attributes:
        hidden: width of each hidden layer.
        depth: number of hidden layers (>= 1).
        residual: add skip connections around hidden-to-hidden layers (masks keep degrees,
            so the autoregressive property survives the sum).
        n_cond: number of conditioning variables (0: unconditional).
    """

    hidden: int = 64
    depth: int = 2
    residual: bool = False
    n_cond: int = 0

    def __post_init__(self) -> None:
        if int(self.hidden) < 1:
            raise ValueError(f"MADE hidden width must be >= 1, got {self.hidden}")
        if int(self.depth) < 1:
            raise ValueError(f"MADE depth must be >= 1, got {self.depth}")
        if int(self.n_cond) < 0:
            raise ValueError(f"MADE n_cond must be >= 0, got {self.n_cond}")


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 connectivity mask."""

    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(NeuralSampler):
    """Masked autoregressive MLP over the binary sites of one fixed supercell."""

    def __init__(self, config: MADEConfig, lattice):
        super().__init__()
        self.config = config
        self.lattice = lattice
        self.n_sites = n = lattice.n_sites
        h = config.hidden

        in_degree = torch.arange(n)
        hidden_degree = torch.arange(h) % max(n - 1, 1)
        out_degree = torch.arange(n)
        self.layers = nn.ModuleList([MaskedLinear(hidden_degree[:, None] >= in_degree[None, :])])
        for _ in range(config.depth - 1):
            self.layers.append(MaskedLinear(hidden_degree[:, None] >= hidden_degree[None, :]))
        self.out = MaskedLinear(out_degree[:, None] > hidden_degree[None, :])
        if config.n_cond:
            self.cond_hidden = nn.ModuleList([nn.Linear(config.n_cond, h, bias=False) for _ in range(config.depth)])
            self.cond_out = nn.Linear(config.n_cond, n, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """All initialisation in one place. The output layer starts at zero so the untrained
        model is the uniform distribution, whose free energy is a sensible starting point."""
        for layer in self.layers:
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def hyperparameters(self) -> dict:
        return asdict(self.config)

    def on_lattice(self, lattice) -> "MADE":
        """MADE is tied to one site count: the same model on an equal-size lattice, else an error."""
        if lattice.n_sites != self.n_sites:
            raise ValueError(
                f"MADE is size-specific: trained on {self.n_sites} sites, cannot run on "
                f"{lattice.n_sites}; use the transformer model for transfer to larger supercells"
            )
        return self

    # -- network -------------------------------------------------------------------------
    def _check_cond(self, cond: Tensor | None, batch: int) -> Tensor | None:
        return self.check_cond(cond, batch, self.config.n_cond, self.out.weight)

    def logits(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Logit of x_i = 1 given x_<i for every site, shape (B, N)."""
        cond = self._check_cond(cond, x.shape[0])
        s = 2.0 * x.to(self.out.weight.dtype) - 1.0
        h = s
        for k, layer in enumerate(self.layers):
            z = layer(h)
            if cond is not None:
                z = z + self.cond_hidden[k](cond)
            z = F.relu(z)
            h = h + z if (self.config.residual and k > 0) else z
        out = self.out(h)
        if cond is not None:
            out = out + self.cond_out(cond)
        return out

    def _log_conditionals(self, logits: Tensor, allowed: Tensor | None) -> Tensor:
        """ln q(x_i = k | x_<i) for k in {0, 1}, shape (..., 2), float64; disallowed -> -inf."""
        two = torch.stack([torch.zeros_like(logits), logits], dim=-1).to(torch.float64)
        if allowed is not None:
            two = two.masked_fill(~allowed, float("-inf"))
        return torch.log_softmax(two, dim=-1)

    # -- NeuralSampler contract ------------------------------------------------------------
    def log_prob(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_sites:
            raise ValueError(f"expected x of shape (B, {self.n_sites}), got {tuple(x.shape)}")
        x = x.long()
        allowed = None
        if n_ones is not None:
            ones_before = torch.cumsum(x, dim=1) - x
            remaining = torch.arange(self.n_sites, 0, -1, device=x.device)
            allowed = canonical_mask(ones_before, remaining, n_ones)
        logq = self._log_conditionals(self.logits(x, cond), allowed)
        return logq.gather(-1, x[..., None])[..., 0].sum(dim=1)

    @torch.no_grad()
    def sample(self, n: int, cond: Tensor | None = None, n_ones: int | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        if n_ones is not None and not 0 <= n_ones <= self.n_sites:
            raise ValueError(f"n_ones must lie in [0, {self.n_sites}], got {n_ones}")
        device = self.out.weight.device
        x = torch.zeros(n, self.n_sites, dtype=torch.long, device=device)
        log_q = torch.zeros(n, dtype=torch.float64, device=device)
        ones = torch.zeros(n, dtype=torch.long, device=device)
        for i in range(self.n_sites):
            logits = self.logits(x, cond)[:, i]
            allowed = None if n_ones is None else canonical_mask(ones, self.n_sites - i, n_ones)
            logq_i = self._log_conditionals(logits, allowed)
            xi = torch.multinomial(logq_i.exp(), 1, generator=generator)[:, 0]
            x[:, i] = xi
            ones += xi
            log_q += logq_i.gather(-1, xi[:, None])[:, 0]
        return x, log_q
