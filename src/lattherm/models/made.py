"""MADE: the fixed-order autoregressive MLP baseline (Germain et al. 2015; VAN, Wu-Wang-Zhang 2019).

q(x) = prod_i q(x_i | x_<i) in site-index order (a lattice's raster order). MADE needs only the
site count, so it also serves systems without a lattice (Sherrington-Kirkpatrick). One masked MLP gives every
conditional in one pass, so ``log_prob`` costs one pass and ``sample`` (the shared loop of
:mod:`lattherm.models.sampling`) costs N passes.

Masks follow MADE's degree construction (0-based): input site j has degree j, each hidden unit
a degree d in {0, ..., N-2} and may see inputs j <= d, hidden-to-hidden connections need
d_out >= d_in, and the output for site i sees hidden units with d < i. Site i's conditional
therefore depends on x_<i only. The width counts units per site (VAN's ``net_width``): a hidden
layer has ``width * N`` units, about ``width`` per degree, so every site sees every earlier one
(a fixed total width below N - 1 would leave the later sites blind to all but the first few).
Conditioning variables (e.g. beta) enter every hidden layer and
the output layer unmasked: they are not sites, so they may inform every conditional.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lattherm.models.base import Autoregressive, SamplingState, check_symmetry_options, log_softmax_canonical
from lattherm.models.physics import physics_logits


@dataclass
class MADEConfig:
    """Hyperparameters of :class:`MADE`.

    Attributes:
        width: hidden units per site (VAN's net_width): each hidden layer has width * N units.
        hidden: total units per hidden layer, overriding ``width`` (legacy; below N - 1 units
            the sites beyond the first ``hidden`` see only the first ``hidden`` sites).
        depth: number of hidden layers (>= 1; VAN's net_depth 3 is depth 2).
        residual: add skip connections around hidden-to-hidden layers (masks keep degrees,
            so the autoregressive property survives the sum).
        n_cond: number of conditioning variables (0: unconditional).
        physics_logits: add the exact local Boltzmann factor of each site given the earlier ones
            to its logits (:mod:`lattherm.models.physics`).
        z2_symmetric: train and sample the spin-flip symmetrised model
            (:class:`lattherm.models.symmetric.Z2Symmetric`); ``auto``: where the system is
            spin-flip symmetric (resolved when training starts).
        lattice_symmetric: train and sample the mixture over the cell's point group
            (:class:`lattherm.models.symmetric.LatticeSymmetric`); ``auto``: on cluster-expansion
            systems (resolved when training starts).
    """

    width: int = 4
    hidden: int | None = None
    depth: int = 2
    residual: bool = False
    n_cond: int = 0
    physics_logits: bool = False
    z2_symmetric: bool | str = "auto"
    lattice_symmetric: bool | str = "auto"

    def __post_init__(self) -> None:
        if int(self.width) < 1:
            raise ValueError(f"MADE width must be >= 1, got {self.width}")
        if self.hidden is not None and int(self.hidden) < 1:
            raise ValueError(f"MADE hidden width must be >= 1 or null, got {self.hidden}")
        check_symmetry_options(self)
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


class MADE(Autoregressive):
    """Masked autoregressive MLP over the ``n_sites`` binary sites of one fixed cell."""

    def __init__(self, config: MADEConfig, n_sites: int):
        super().__init__()
        if int(n_sites) < 1:
            raise ValueError(f"MADE needs at least one site, got n_sites = {n_sites}")
        self.config = config
        self.n_sites = n = int(n_sites)
        h = config.hidden if config.hidden is not None else config.width * n

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
        """MADE is tied to one site count: the same model on an equal-size cell (a lattice, or the
        site count of a system without one), else an error."""
        n_sites = lattice if isinstance(lattice, int) else lattice.n_sites
        if n_sites != self.n_sites:
            raise ValueError(
                f"MADE is size-specific: trained on {self.n_sites} sites, cannot run on "
                f"{n_sites}; use the transformer model for transfer to larger supercells"
            )
        return self

    # -- network -------------------------------------------------------------------------
    def logits(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Logit of x_i = 1 given x_<i for every site, shape (B, N)."""
        cond = self.check_cond(cond, x.shape[0], self.config.n_cond, self.out.weight)
        h = 2.0 * x.to(self.out.weight.dtype) - 1.0
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

    # -- Autoregressive contract -----------------------------------------------------------
    def _check_order(self, order: Tensor | None) -> None:
        if order is not None and not bool((torch.as_tensor(order).reshape(-1, self.n_sites).cpu()
                                           == torch.arange(self.n_sites)).all()):
            raise ValueError("MADE has a fixed site order (raster); order must be None or the raster order")

    def log_conditionals(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                         order: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        self.check_n_ones(n_ones)
        self._check_order(order)
        logits = F.pad(self.logits(x, cond)[..., None], (1, 0))
        sites = torch.arange(self.n_sites, device=x.device)[None]
        phys = physics_logits(self, x, sites, sites, sites, self.check_cond(cond, x.shape[0], self.config.n_cond, self.out.weight))
        if phys is not None:
            logits = logits.to(torch.float64) + phys
        ones_before = torch.cumsum(x, dim=1) - x
        remaining = torch.arange(self.n_sites, 0, -1, device=x.device)
        return log_softmax_canonical(logits, ones_before, remaining, n_ones)

    def sampling_state(self, n: int, cond: Tensor | None, order: Tensor | None, use_cache: bool) -> SamplingState:
        self._check_order(order)
        order = torch.arange(self.n_sites, device=self.out.weight.device)[None]
        return SamplingState(order, order, self.check_cond(cond, n, self.config.n_cond, self.out.weight), None)

    def next_logits(self, x: Tensor, t: int, state: SamplingState) -> Tensor:
        # a full pass per site; cheap next to the transformer, so MADE keeps no cache
        logits = F.pad(self.logits(x, state.cond)[:, t, None], (1, 0))
        site = torch.full((1, 1), t, device=x.device)
        phys = physics_logits(self, x, site, state.rank, site, state.cond)
        return logits if phys is None else logits.to(torch.float64) + phys[:, 0]
