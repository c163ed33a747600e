"""Any-order autoregressive Transformer with a marginalization network (AO-ARM + MaM,
Liu-Ramadge-Adams, ICML 2024), over the sites of a periodic supercell.

- The conditional network (``conditional`` + ``head``) gives ln q(x_i | x_S) for every
  unobserved site i; sampling along any site order gives an exact, normalised q(x).
- The marginal network (``marginal`` + ``marginal_head``) gives ln p(x_S) as a sum of per-token
  readouts over the observed sites, so ln p(empty) = 0 exactly. The self-consistency penalty
  that ties the two lives in :mod:`lattherm.training.variational`.

Every site is a token: observed tokens carry their species embedding, unobserved (query)
tokens a mask embedding. A pass has one key per site (the token on it) plus an attention sink,
and every token has a rank. A token attends to the sink and to the *observed sites of lower
rank* (marginal network: to every observed site, so ln p(x_S) depends on the set only). So a
conditional never sees unobserved or later sites, a placed site's keys never change, the
sampler can cache keys per site, and one pass over 2N tokens (N observed, N queries: XLNet's
two streams) gives every conditional of ``log_prob`` at once.

The sink is one key of value 0 and a learned score per head. Values carry no count, so without
it every token of a uniform set x_S gets the same features for |S| = 1 and |S| = N and the
per-token-sum marginal cannot represent an interacting model; with it the weight left for the
sites depends on |S|.

Geometry enters only through the scores: rotary angles 2 pi k u_a / L_a from lattice
coordinates u and the training cell's repeats L_a (a score depends on the periodic displacement
only: translation equivariant, and the same angle per lattice step on every supercell that
repeats the training cell, ``on_lattice``), a learned bias per neighbour shell of the infinite
lattice, and optionally attention restricted to the first ``attention_shells`` shells, so the
model sees the same neighbourhoods on every supercell (what transfers; bench/bench_accuracy.py).

A cell without a lattice (Sherrington-Kirkpatrick: every pair interacts, no site is near or far)
has no geometry to encode: the model is built on its site count, attends to every placed site,
and tells the sites apart by a learned embedding per site (so it is tied to that cell, like MADE);
its couplings reach the conditionals through ``physics_logits``.

Patches (``patch``, e.g. [2, 2]): a token is then a block of repeats of the lattice's cell (all its
basis sites, k in all) that tiles the supercell, with vocabulary 2^k, so a sample takes N / k
steps instead of N. Everything above holds with patches for sites: a patch's position is that of
its first site, the shell of two patches is the nearest shell between their sites (attention
shell 1: the patches holding a neighbour of one of my sites), the order is over patches, and the
physics term is that of the whole patch (:mod:`lattherm.models.physics`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lattherm.lattices import lattice_coordinates, lattice_patches, shell_buckets, sites_within
from lattherm.models.base import Autoregressive, SamplingState, check_symmetry_options, log_softmax_canonical
from lattherm.models.physics import physics_logits

SCORES = ("exact", "marginal")
# a full pass with local attention attends densely (masked) over all M positions instead of gathering
# each token's C local keys while M <= DENSE_RATIO * C: the gather's backward dominates a training
# step there; past it, the dense scores' M / C times more work does (bench/bench_dense_local.py)
DENSE_RATIO = 20
MAX_PATCH_SITES = 16  # vocabulary 2^16: the head and the softmax grow as 2^k


@dataclass
class TransformerConfig:
    n_species: int = 2
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 2
    mlp_ratio: int = 4
    n_freq: int = 2  # rotary frequencies per lattice axis; needs 2 * dimension * n_freq <= d_model / n_head
    n_bias_shells: int = 2  # neighbour shells with their own learned attention bias (0: none)
    attention_shells: int | None = None  # attend only within this many shells (None: to every site)
    # L_a of the rotary angles; None: the repeats of the cell the model is built on, then saved
    # and kept on transfer (rebuilding them from a larger cell would change every angle per step)
    rotary_period: list[int] | None = None
    n_cond: int = 0  # conditioning variables (0: unconditional)
    d_cond: int = 32  # hidden width of the conditioning MLP
    # training (lattherm.training.variational): the penalty's full-configuration weight, the
    # fraction of the batch it is evaluated on, and the ln q_train whose score enters the loss
    # ("exact": ln q of the sampler's conditionals; "marginal": the one-pass ln p, as in the paper;
    # bench/bench_accuracy.py compares them)
    full_penalty: float = 1.0
    penalty_fraction: float = 0.25
    score: str = "exact"
    # the exact local Boltzmann factor of each site given the placed ones, added to its logits
    # (lattherm.models.physics), spin-flip symmetrisation (true, false, "auto": where the
    # system is spin-flip symmetric, resolved when training starts) and the mixture over the
    # cell's point group (auto: on cluster-expansion systems; lattherm.models.symmetric)
    physics_logits: bool = False
    z2_symmetric: bool | str = "auto"
    lattice_symmetric: bool | str = "auto"
    # repeats of the lattice's cell per token along each axis (None: one site per token)
    patch: list[int] | None = None

    def __post_init__(self) -> None:
        for name in ("n_species", "d_model", "n_head", "n_layer", "mlp_ratio", "d_cond"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"transformer {name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_freq", "n_bias_shells", "n_cond"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"transformer {name} must be >= 0, got {getattr(self, name)}")
        if self.n_species < 2:
            raise ValueError(f"transformer n_species must be >= 2, got {self.n_species}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if not self.full_penalty >= 0:
            raise ValueError(f"full_penalty must be >= 0, got {self.full_penalty}")
        if not 0 < self.penalty_fraction <= 1:
            raise ValueError(f"penalty_fraction must lie in (0, 1], got {self.penalty_fraction}")
        if self.attention_shells is not None and int(self.attention_shells) < 1:
            raise ValueError(f"attention_shells must be >= 1 or null, got {self.attention_shells}")
        if self.rotary_period is not None:
            self.rotary_period = [int(p) for p in self.rotary_period]
            if not self.rotary_period or min(self.rotary_period) < 1:
                raise ValueError(f"rotary_period must list positive repeats, got {self.rotary_period}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.physics_logits and self.n_species != 2:
            raise ValueError(f"physics_logits needs 2 species, got n_species = {self.n_species}")
        if self.patch is not None:
            if not isinstance(self.patch, (list, tuple)) or not self.patch or any(
                    isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1 for p in self.patch):
                raise ValueError(f"patch must list positive repeats per lattice axis, got {self.patch!r}")
            self.patch = [int(p) for p in self.patch]
            if self.n_species != 2:
                raise ValueError(f"patch needs 2 species (vocabulary 2^k), got n_species = {self.n_species}")
        check_symmetry_options(self)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first 2 r channels of x (..., T, hd) pairwise (j, r + j) by angles (..., T, r)."""
    r = cos.shape[-1]
    x1, x2, rest = x[..., :r], x[..., r : 2 * r], x[..., 2 * r :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


class KVCache:
    """Per layer, the keys and values of the placed tokens in buffers allocated once and written
    in place: slot 0 the sink (key and value 0), slot 1 + j the j-th key of the pass's layout."""

    def __init__(self, n_sites: int):
        self.n_sites = n_sites
        self.k: dict[int, Tensor] = {}
        self.v: dict[int, Tensor] = {}

    def write(self, layer: int, k: Tensor, v: Tensor, slots: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, H, S, hd) at ``slots`` (1 or B, S); return all buffers."""
        B, H, S, hd = k.shape
        if layer not in self.k:
            self.k[layer] = k.new_zeros(B, H, self.n_sites + 1, hd)
            self.v[layer] = v.new_zeros(B, H, self.n_sites + 1, hd)
        slots = (slots + 1)[:, None, :, None].expand(B, H, S, hd)
        return self.k[layer].scatter_(2, slots, k), self.v[layer].scatter_(2, slots, v)


@dataclass
class Pattern:
    """Who attends to whom in one pass: ``allowed`` (1 or B, T, C) and the shell ``buckets``
    of each key; ``slots`` (1 or B, T, 1 + C) the cache slots of the sink and the C keys
    (local attention), None when the keys are the first C slots (global attention); the
    first ``store.shape[1]`` tokens are written to the cache slots ``store``."""

    allowed: Tensor
    buckets: Tensor | None
    slots: Tensor | None
    store: Tensor


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        d = config.d_model
        self.n_head = config.n_head
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, config.mlp_ratio * d), nn.GELU(), nn.Linear(config.mlp_ratio * d, d))
        n_bias = config.n_bias_shells
        self.shell_bias = nn.Parameter(torch.zeros(n_bias + 2, config.n_head)) if n_bias else None
        self.sink = nn.Parameter(torch.zeros(config.n_head))

    def forward(self, h: Tensor, cos: Tensor, sin: Tensor, pattern: Pattern, cache: KVCache, layer: int) -> Tensor:
        B, T, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        S = pattern.store.shape[1]
        keys, values = cache.write(layer, k[:, :, :S], v[:, :, :S], pattern.store)
        bias = torch.zeros((), dtype=q.dtype, device=q.device)
        if self.shell_bias is not None:
            bias = self.shell_bias[pattern.buckets].permute(0, 3, 1, 2)
        mask = torch.where(pattern.allowed[:, None], bias, float("-inf"))
        mask = mask.expand(mask.shape[0], self.n_head, T, -1)
        mask = torch.cat([self.sink[None, :, None, None].expand(mask.shape[0], -1, T, 1), mask], -1).to(q.dtype)
        if pattern.slots is None:
            C = mask.shape[-1]
            y = F.scaled_dot_product_attention(q, keys[:, :, :C], values[:, :, :C], attn_mask=mask)
        else:  # each token attends to its own 1 + C gathered keys: O(N C) instead of O(N^2)
            keys, values = gather_slots(keys, pattern.slots), gather_slots(values, pattern.slots)
            y = F.scaled_dot_product_attention(q[:, :, :, None], keys, values, attn_mask=mask[:, :, :, None])[:, :, :, 0]
        h = h + self.proj(y.transpose(1, 2).reshape(B, T, d))
        return h + self.mlp(self.ln2(h))


def gather_slots(source: Tensor, slots: Tensor) -> Tensor:
    """source (B, H, S, hd), slots (1 or B, T, C) -> (B, H, T, C, hd)."""
    B, H, _, hd = source.shape
    Bs, T, C = slots.shape
    return source.gather(2, slots.reshape(Bs, 1, T * C, 1).expand(B, H, T * C, hd)).view(B, H, T, C, hd)


class Trunk(nn.Module):
    """Token embedding (``vocab`` values and the mask; plus a learned embedding per site on a cell of ``site_count`` sites
    without geometry), conditioning MLP and the blocks; returns the final token features."""

    def __init__(self, config: TransformerConfig, site_count: int | None, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab + 1, config.d_model)  # index V: the mask token
        self.site_embed = nn.Embedding(site_count, config.d_model) if site_count else None
        if config.n_cond:
            self.cond_mlp = nn.Sequential(nn.Linear(config.n_cond, config.d_cond), nn.GELU())
            self.cond_in = nn.ModuleList([nn.Linear(config.d_cond, config.d_model) for _ in range(config.n_layer)])
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model)

    def forward(self, species: Tensor, sites: Tensor, cond: Tensor | None, cos: Tensor, sin: Tensor,
                pattern: Pattern, cache: KVCache) -> Tensor:
        h = self.embed(species)
        if self.site_embed is not None:
            h = h + self.site_embed(sites)
        c = self.cond_mlp(cond) if cond is not None else None
        cos, sin = cos[sites][:, None], sin[sites][:, None]
        for layer, block in enumerate(self.blocks):
            if c is not None:  # conditioning enters every block, so one model serves a whole scan
                h = h + self.cond_in[layer](c)[:, None, :]
            h = block(h, cos, sin, pattern, cache, layer)
        return self.ln_f(h)


class AnyOrderTransformer(Autoregressive):
    """Orders are (N,) permutations shared by the batch or (B, N) per configuration; None is the
    lattice's raster order, the default of both ``sample`` and ``log_prob``."""

    has_marginal = True

    def __init__(self, config: TransformerConfig, cell):
        """``cell``: a :class:`lattherm.lattices.Lattice`, or the site count (int) of a cell
        without geometry, which needs ``n_freq: 0``, ``n_bias_shells: 0``, ``attention_shells: null``."""
        super().__init__()
        self.site_count = cell if isinstance(cell, int) else None  # set: no geometry, one embedding per site
        if self.site_count is not None:
            geometric = {"n_freq": config.n_freq, "n_bias_shells": config.n_bias_shells,
                         "attention_shells": config.attention_shells, "rotary_period": config.rotary_period,
                         "patch": config.patch}
            used = {k: v for k, v in geometric.items() if v not in (0, None)}
            if used:
                raise ValueError(f"a cell of {cell} sites without a lattice has no geometry to encode: set "
                                 f"n_freq: 0, n_bias_shells: 0, attention_shells: null (got {used})")
        elif config.rotary_period is None:
            config = replace(config, rotary_period=[int(r) for r in cell.repeats[: cell.dimension]])
        self.config = config
        self.n_species = config.n_species
        self.patch_size = 1 if config.patch is None else cell.n_basis * math.prod(config.patch)  # k sites per token
        if self.patch_size > MAX_PATCH_SITES:
            raise ValueError(f"patch {config.patch} holds {self.patch_size} sites: a vocabulary of 2^{self.patch_size} "
                             f"values; at most {MAX_PATCH_SITES} sites per patch")
        self.vocab = config.n_species ** self.patch_size
        self.conditional = Trunk(config, self.site_count, self.vocab)
        self.head = nn.Linear(config.d_model, self.vocab)
        self.marginal = Trunk(config, self.site_count, self.vocab)
        self.marginal_head = nn.Linear(config.d_model, 1)
        self._init_weights()
        self.on_lattice(cell)

    def _init_weights(self) -> None:
        """All initialisation in one place (GPT-2 style normals). Both heads start at zero weight:
        uniform conditionals and ln p(x_S) = -|S| ln K agree, so the penalty starts at zero and
        the untrained sampler is the uniform distribution."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        for head in (self.head, self.marginal_head):
            nn.init.zeros_(head.weight)
        nn.init.constant_(self.marginal_head.bias, -math.log(self.vocab))

    def hyperparameters(self) -> dict:
        return asdict(self.config)

    def on_lattice(self, lattice) -> "AnyOrderTransformer":
        """The same weights on another supercell of the same lattice (rebuilds the geometry tables);
        a model without geometry only on its own site count."""
        if self.site_count is not None or isinstance(lattice, int):
            return self._on_sites(lattice)
        old = getattr(self, "lattice", None)
        if old is not None and (lattice.kind != old.kind or lattice.n_basis != old.n_basis
                                or not np.isclose(lattice.lattice_constant, old.lattice_constant)):
            raise ValueError(
                f"cannot transfer a transformer trained on a {old.kind} lattice (basis {old.n_basis}, "
                f"a = {old.lattice_constant}) to a {lattice.kind} lattice (basis {lattice.n_basis}, "
                f"a = {lattice.lattice_constant}); the lattice kind, basis and constant must match")
        cfg = self.config
        n_rot = lattice.dimension * cfg.n_freq
        if 2 * n_rot > cfg.d_model // cfg.n_head:
            raise ValueError(f"rotary encodings need 2 * {lattice.dimension} * n_freq = {2 * n_rot} channels "
                             f"but the head dimension is {cfg.d_model // cfg.n_head}; lower n_freq or raise d_model / n_head")
        period, repeats = cfg.rotary_period, list(lattice.repeats[: lattice.dimension])
        if len(period) != len(repeats) or any(r % p for r, p in zip(repeats, period)):
            raise ValueError(f"the rotary encodings have periods {period} (the training cell): a supercell "
                             f"must repeat that cell along every axis, got repeats {repeats}")
        patch_sites = lattice_patches(lattice, cfg.patch)
        if lattice is not old and getattr(self, "physics", None) is not None:
            del self.physics  # the tables of the old cell: attach the new cell's Hamiltonian
        self.lattice, self.n_sites = lattice, lattice.n_sites
        u = lattice_coordinates(lattice)[patch_sites[:, 0], : lattice.dimension]  # a patch sits at its first site
        angles = 2 * np.pi * (u / np.asarray(period, dtype=float))[:, :, None] * np.arange(1, cfg.n_freq + 1)
        angles = torch.from_numpy(angles.reshape(len(u), -1))
        n_bias, n_local = cfg.n_bias_shells, cfg.attention_shells or 0
        buckets = shell_buckets(lattice, max(n_bias, n_local)) if max(n_bias, n_local) else None
        if buckets is not None:  # two patches are as near as their nearest sites
            buckets = buckets[patch_sites[:, :, None, None], patch_sites[None, None]].min(axis=(1, 3))
        key_sites = sites_within(buckets, n_local) if n_local else None  # padded with M
        key_buckets = None
        if n_bias:  # beyond n_bias shells: one shared bias
            key_buckets = np.minimum(buckets, n_bias + 1)
            if key_sites is not None:
                key_buckets = np.take_along_axis(np.pad(key_buckets, ((0, 0), (0, 1))), key_sites, 1)
        self._set_tables({"rot_cos": torch.cos(angles).float(), "rot_sin": torch.sin(angles).float(),
                          "key_sites": key_sites, "key_buckets": key_buckets}, patch_sites)
        return self

    def _set_tables(self, geometry: dict, patch_sites: np.ndarray) -> None:
        """Register the geometry tables and the patch tables of the current cell as buffers."""
        k = patch_sites.shape[1]
        site_patch = np.empty(self.n_sites, dtype=np.int64)
        site_patch[patch_sites] = np.arange(len(patch_sites))[:, None]
        values = (np.arange(self.vocab)[:, None] >> np.arange(k)) & 1  # bit a of a value: the species of site a
        tables = {**geometry, "patch_sites": patch_sites, "site_patch": site_patch, "value_table": values,
                  "value_ones": values.sum(1), "bit_weights": 1 << np.arange(k)}
        device = self.head.weight.device
        for name, table in tables.items():
            table = torch.as_tensor(table).to(device) if table is not None else None
            self.register_buffer(name, table, persistent=False)
        self.n_tokens = len(patch_sites)

    @property
    def patches(self) -> Tensor:
        return self.patch_sites

    @property
    def patch_values(self) -> Tensor:
        return self.value_table

    def tokens(self, x: Tensor) -> Tensor:
        if self.patch_size == 1:
            return x
        return (x[:, self.patch_sites] * self.bit_weights).sum(-1)

    def _on_sites(self, cell) -> "AnyOrderTransformer":
        n_sites = cell if isinstance(cell, int) else cell.n_sites
        if self.site_count is None:
            raise ValueError(f"this transformer encodes a lattice; a cell of {n_sites} sites without one cannot use it")
        if n_sites != self.site_count:
            raise ValueError(f"a transformer without geometry is size-specific (one embedding per site): trained on "
                             f"{self.site_count} sites, cannot run on {n_sites}")
        self.lattice, self.n_sites = None, n_sites
        self._set_tables({"rot_cos": torch.ones(n_sites, 0), "rot_sin": torch.zeros(n_sites, 0),
                          "key_sites": None, "key_buckets": None}, np.arange(n_sites)[:, None])
        return self

    # -- one pass ----------------------------------------------------------------------------
    def _features(self, trunk: Trunk, species: Tensor, sites: Tensor, ranks: Tensor, key_ranks: Tensor,
                  cond: Tensor | None, cache: KVCache | None = None, store: Tensor | None = None,
                  key_sites: Tensor | None = None) -> Tensor:
        """Features (B, T, d) of the tokens ``species`` (B, T; V: a query) on the token positions
        ``sites`` (sites, or patches) with ``ranks`` (1 or B, T). Key slot j holds position j (or
        ``key_sites[:, j]``) and its observed token's rank ``key_ranks[:, j]`` (M + 1: none); a token
        sees the keys of lower rank. Without a cache the first M tokens are the positions in order;
        with one, the first ``store.shape[1]`` tokens are added to it at slots ``store``."""
        M, full = self.n_tokens, cache is None
        if full:  # key slot j holds position j
            cache, store = KVCache(M), sites[:, :M]
        buckets = slots = None
        if self.key_sites is None:
            allowed = key_ranks[:, None, :] < ranks[:, :, None]
            if self.key_buckets is not None:
                buckets = (self.key_buckets[sites] if key_sites is None
                           else self.key_buckets[sites[:, :, None], key_sites[:, None, :]])
        else:
            keys = self.key_sites[sites]  # (1 or B, T, C), padded with M: no position, never allowed
            Bm = max(keys.shape[0], key_ranks.shape[0])
            padded = F.pad(key_ranks, (0, 1), value=M + 1).expand(Bm, -1)
            allowed = padded.gather(1, keys.expand(Bm, -1, -1).flatten(1)).view(Bm, *keys.shape[1:]) < ranks[:, :, None]
            buckets = None if self.key_buckets is None else self.key_buckets[sites]
            if full and M <= DENSE_RATIO * keys.shape[-1]:
                allowed, buckets = self._dense(keys, allowed), self._dense(keys, buckets)
            else:
                slots = F.pad(torch.where(keys < M, keys + 1, 0), (1, 0))
        pattern = Pattern(allowed, buckets, slots, store)
        return trunk(species, sites, cond, self.rot_cos, self.rot_sin, pattern, cache)

    def _dense(self, keys: Tensor, local: Tensor | None) -> Tensor | None:
        """``local`` (1 or B, T, C), a value per local key ``keys`` (1 or B, T, C), spread over all
        M positions (Bm, T, M), 0 / False elsewhere (never allowed there)."""
        if local is None:
            return None
        Bm, M = max(keys.shape[0], local.shape[0]), self.n_tokens
        index = keys.expand(Bm, -1, -1)  # the padding M lands in a column that is dropped
        return local.new_zeros(Bm, keys.shape[1], M + 1).scatter_(2, index, local.expand(Bm, -1, -1))[..., :M]

    def _order(self, order: Tensor | None, batch: int) -> Tensor:
        device, M = self.head.weight.device, self.n_tokens
        what = "sites" if self.patch_size == 1 else "patches"
        if order is None:
            return torch.arange(M, device=device)[None]
        order = torch.as_tensor(order, device=device)
        order = order[None] if order.dim() == 1 else order
        if order.dim() != 2 or order.shape[1] != M or order.shape[0] not in (1, batch):
            raise ValueError(f"order (of the {what}) must have shape ({M},) or ({batch}, {M}), got {tuple(order.shape)}")
        if not torch.equal(torch.sort(order, dim=1).values, torch.arange(M, device=device).expand_as(order)):
            raise ValueError(f"each order must be a permutation of the {what} 0..{M - 1}")
        return order.long()

    def _inputs(self, x: Tensor, observed: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """The tokens of x, which are ``observed`` (sites, (B, N) bool, whole patches), the token
        positions and the checked cond."""
        x = self.check_x(x)
        if observed.dtype != torch.bool or observed.shape != x.shape:
            raise ValueError(f"observed must be a bool tensor of shape {tuple(x.shape)}, "
                             f"got {observed.dtype} {tuple(observed.shape)}")
        per_patch = observed[:, self.patch_sites]
        if not torch.equal(per_patch.all(-1), per_patch.any(-1)):
            raise ValueError("observed must hold whole patches (every site of a patch, or none)")
        cond = self.check_cond(cond, x.shape[0], self.config.n_cond, self.head.weight)
        return self.tokens(x), per_patch.all(-1), torch.arange(self.n_tokens, device=x.device)[None], cond

    # -- conditionals and marginals --------------------------------------------------------------
    def conditionals(self, x: Tensor, observed: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                     order: Tensor | None = None) -> Tensor:
        """ln q(token i = v | x_S) of every token (site or patch), (B, M, V) float64, one pass;
        S = ``observed`` (B, N) sites (whole patches), placed in the order of ``order`` (raster if
        None). Observed rows are point masses."""
        x = self.check_x(x)
        tokens, seen, positions, cond = self._inputs(x, observed, cond)
        self.check_n_ones(n_ones)
        rank = torch.argsort(self._order(order, x.shape[0]), dim=1)
        M = self.n_tokens
        h = self._features(self.conditional, torch.where(seen, tokens, self.vocab), positions,
                           torch.where(seen, rank, M), torch.where(seen, rank, M + 1), cond)  # queries see all of S
        logits = self._with_physics(self.head(h), x, positions, torch.where(seen, 0, M + 1), torch.ones_like(positions), cond)
        logq = log_softmax_canonical(logits, (x * observed).sum(1, keepdim=True),
                                     self.n_sites - observed.sum(1, keepdim=True), n_ones, self.value_ones)
        return torch.where(seen[..., None], torch.log(F.one_hot(tokens, self.vocab).double()), logq)

    def log_marginal(self, x: Tensor, observed: Tensor, cond: Tensor | None = None) -> Tensor:
        """ln p(x_S) from one pass of the marginal network, (B,) float64; 0 for S empty."""
        tokens, seen, positions, cond = self._inputs(x, observed, cond)
        h = self._features(self.marginal, torch.where(seen, tokens, self.vocab), positions, torch.ones_like(positions),
                           torch.where(seen, 0, self.n_tokens + 1), cond)
        return (self.marginal_head(h)[..., 0].double() * seen).sum(1)

    def log_conditionals(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                         order: Tensor | None = None) -> Tensor:
        """ln q(token i = v | the tokens before i in ``order``) of every token, (B, M, V) float64:
        one pass over M observed tokens and M queries, the conditionals the sampler computes."""
        x = self.check_x(x)
        B, M = x.shape[0], self.n_tokens
        cond = self.check_cond(cond, B, self.config.n_cond, self.head.weight)
        self.check_n_ones(n_ones)
        order = self._order(order, B)
        rank = torch.argsort(order, dim=1)
        positions = torch.arange(M, device=x.device)[None]
        tokens = self.tokens(x)
        h = self._features(self.conditional, torch.cat([tokens, torch.full_like(tokens, self.vocab)], 1),
                           torch.cat([positions, positions], 1), torch.cat([rank, rank], 1), rank, cond)
        ones_in_order = self.value_ones[tokens].gather(1, order.expand(B, -1))
        ones_before = (torch.cumsum(ones_in_order, 1) - ones_in_order).gather(1, rank.expand(B, -1))
        logits = self._with_physics(self.head(h[:, M:]), x, positions, rank, rank, cond)
        return log_softmax_canonical(logits, ones_before, self.n_sites - rank * self.patch_size, n_ones, self.value_ones)

    # -- sampling (the loop is lattherm.models.sampling.ancestral_sample) ------------------------
    def sampling_state(self, n: int, cond: Tensor | None, order: Tensor | None, use_cache: bool) -> SamplingState:
        order = self._order(order, n)
        cond = self.check_cond(cond, n, self.config.n_cond, self.head.weight)
        return SamplingState(order, torch.argsort(order, dim=1), cond, KVCache(self.n_tokens) if use_cache else None)

    def next_logits(self, x: Tensor, t: int, state: SamplingState) -> Tensor:
        n, M, device = x.shape[0], self.n_tokens, x.device
        order, rank, cond = state.order, state.rank, state.cond
        query = order[:, t : t + 1]
        if state.cache is None:  # a full pass over all M tokens
            observed = (rank < t).expand(n, -1)
            h = self._features(self.conditional, torch.where(observed, self.tokens(x), self.vocab),
                               torch.arange(M, device=device)[None], torch.where(observed, rank, M),
                               torch.where(observed, rank, M + 1), cond)
            logits = self.head(h[torch.arange(n, device=device), query[:, 0].expand(n)])[:, None]
            return self._with_physics(logits, x, query, rank, torch.full_like(query, t), cond)[:, 0]
        # two new tokens: the one placed at step t - 1 (stored in the cache) and the query
        placed = order[:, max(t - 1, 0) : t].expand(n, -1)
        species = torch.cat([self.tokens(x).gather(1, placed), torch.full((n, 1), self.vocab, device=device)], 1)
        ranks = torch.arange(t - placed.shape[1], t + 1, device=device)[None]
        positions = torch.cat([placed, query.expand(n, -1)], 1)
        if self.key_sites is None:  # keys in the order placed: a step attends to t keys, not M
            h = self._features(self.conditional, species, positions, ranks, torch.arange(t, device=device)[None], cond,
                               state.cache, ranks[:, :-1], order[:, :t])
        else:  # keys on their positions, where each token finds its neighbours
            h = self._features(self.conditional, species, positions, ranks, torch.where(rank < t, rank, M + 1), cond,
                               state.cache, placed)
        return self._with_physics(self.head(h[:, -1:]), x, query, rank, torch.full_like(query, t), cond)[:, 0]

    def _with_physics(self, logits: Tensor, x: Tensor, tokens: Tensor, key_rank: Tensor, query_rank: Tensor,
                      cond: Tensor | None) -> Tensor:
        """``logits`` (B, T, V) of the token positions ``tokens`` plus the physics term of the sites
        whose token's ``key_rank`` is below each query's ``query_rank`` (:mod:`lattherm.models.physics`)."""
        if self.patch_size > 1:
            key_rank = key_rank[:, self.site_patch]
        phys = physics_logits(self, x, tokens, key_rank, query_rank, cond)
        return logits if phys is None else logits.to(torch.float64) + phys
