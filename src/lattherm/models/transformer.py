"""Any-order autoregressive Transformer with a marginalization head (AO-ARM + MaM).

Two Transformers over the sites of a periodic supercell (Liu-Ramadge-Adams, ICML 2024):

- the *conditional* network (parameters phi) gives q_phi(x_i | x_S) for every unobserved
  site i of a partially observed configuration x_S; sampling follows any site order and
  q(x) = prod_t q(x_{o_t} | x_{o_<t}) is exact and normalised;
- the *marginal* network (parameters theta) gives ln p_theta(x_S) of a partial configuration
  in one pass, with ln p_theta(empty) = 0 exactly by construction: it is a sum over the
  observed tokens of a per-token readout, so the empty sum is 0.

The two are tied by the self-consistency penalty
[ln p(x_S) + ln q(x_i | x_S) - ln p(x_S + x_i)]^2 along random orders (``training_terms``).

Tokens. Every site is one token: an *observed* token carries its species embedding, an
*unobserved* (query) token a learned mask embedding. Tokens carry no absolute position;
geometry enters only through the attention scores (below).

Attention masks. Each token has a rank in the order (observed sites: their position in the
order; query tokens: a rank after all the observed sites they may see). A token attends to

    observed tokens of strictly lower rank, and itself.

So an observed token sees the observed tokens before it in the order (causal), and a query
token sees all observed tokens of lower rank and itself, never another query token. Hence

- a conditional never depends on unobserved sites (they are query tokens nobody attends to);
- an observed token's keys and values never change when later sites are placed, so the
  KV-cached sampler (which appends each placed site's keys/values) is exact, and one pass over
  2N tokens (N observed tokens + N queries, the two-stream layout of XLNet) gives every
  conditional of ``log_prob`` at once, equal to what the sampler computed step by step.

The conditionals depend on the order in which S was placed, not only on the set S (the
price of exact caching); self-consistency with the order-free marginal pushes them towards
order independence. The marginal network uses the *set* mask instead: observed tokens attend
to all observed tokens, so ln p_theta(x_S) is a function of the set.

Attention sink. Softmax attention averages values, and values carry no position, so without
help a token cannot count: every token of a uniform set x_S (all sites the same species) gets
the same features for |S| = 1 and |S| = N, and the per-token-sum marginal would be forced to
ln p(x_S) = |S| ln p(x_i), which is false for any interacting model (on 2x2 Ising at beta = 0.4
a direct fit to the exact log-marginals plateaued at errors of 0.4 however long one trained).
Every block therefore has, per head, one extra key of value 0 with a learned score that every
token attends to; the remaining weight |S| e^s / (e^sink + |S| e^s) then depends on |S|.
The sink has no position and no cached state, so translation equivariance and exact KV-cached
sampling are unchanged.

Positional encoding. Rotary encodings built from lattice coordinates: site i has coordinates
u_i = (cell index + basis position) in units of the primitive vectors (for FCC primitive
repeats the axes are the primitive vectors), and rotary pair (a, k) turns by
2 pi k u_{i,a} / L_a, k = 1..n_freq, with L_a the repeats of the training cell
(``rotary_period``). A query-key score then depends only on 2 pi k (u_j - u_i) / L_a modulo
2 pi, i.e. on the periodic displacement, so the network is translation equivariant, and it runs
on any supercell that repeats the training cell (``on_lattice``) with the same angle per
lattice step. A learned per-head, per-layer attention bias on the neighbour shell of the
minimum-image displacement (shells of the infinite lattice, so shell k means the same distance
on every supercell) gives short-range geometry that transfers exactly, and ``attention_shells``
can restrict attention to the first shells: a local model sees the same neighbourhoods on
every supercell. (With global attention a query averages over all N observed tokens, so its
features drift as N grows: moved from 16x16 to 32x32 Ising at beta_c, a global model's relative
F error was 1.0e-2, a two-shell local one's 1.0e-3; ``bench/bench_accuracy.py``.)

Conditioning variables ``cond`` (B, n_cond), e.g. beta or (beta, dmu), pass through a small
MLP and are added to every token before every block, so one model serves a whole scan.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lattherm.models.base import NeuralSampler, TrainingTerms, canonical_mask


SCORES = ("exact", "marginal")


@dataclass
class TransformerConfig:
    """Hyperparameters of :class:`AnyOrderTransformer` (shared by both networks).

    Attributes:
        n_species: number of species K per site.
        d_model: token width.
        n_head: attention heads; d_model / n_head must leave room for the rotary pairs
            (2 * dimension * n_freq <= d_model / n_head).
        n_layer: Transformer blocks per network.
        mlp_ratio: hidden width of each block's MLP in units of d_model.
        n_freq: rotary frequencies 2 pi k / L, k = 1..n_freq, per lattice axis.
        n_bias_shells: neighbour shells with their own learned attention bias (0: none).
        attention_shells: attend only to sites within this many neighbour shells (and the sink);
            None: to all sites. Local attention makes a model's conditionals and marginal
            depend on the same neighbourhoods on any supercell, which is what transfers.
        rotary_period: the L_a of the rotary frequencies 2 pi k / L_a. None: the repeats of the
            cell the model is built on (its training cell); it is then saved with the model
            and kept on transfer, so a lattice step turns a rotary pair by the same angle on
            every supercell (rebuilding 2 pi k / L from the larger cell would halve the angle
            per step from 10x10 to 20x20 and change what every learned attention pattern means).
        n_cond: number of conditioning variables (0: unconditional).
        d_cond: hidden width of the conditioning MLP.
        full_penalty: weight of the full-configuration term
            [ln p(x) - ln q(x along a random order)]^2 / N of the penalty.
        penalty_fraction: fraction of each training batch on which the self-consistency
            penalty is evaluated (it costs about six times the marginal's own pass per row).
        score: the ln q_train(x) whose score enters the variational loss. ``"exact"``: the exact
            ln q of the conditionals along the sampling order (one two-stream pass), so the
            sampler is trained directly and the penalty keeps the marginal consistent with it;
            ``"marginal"``: the one-pass marginal ln p_theta(x) (Liu-Ramadge-Adams 2024), so the
            conditionals learn only through the penalty. On 16x16 Ising at beta_c after 240 s
            of CPU training, "exact" reached a relative F_IS error of 0.011 (ESS 0.05),
            "marginal" 0.11 (ESS 0.0003) (``bench/bench_accuracy.py``), hence the default.
    """

    n_species: int = 2
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 2
    mlp_ratio: int = 4
    n_freq: int = 2
    n_bias_shells: int = 2
    attention_shells: int | None = None
    rotary_period: list[int] | None = None
    n_cond: int = 0
    d_cond: int = 32
    full_penalty: float = 1.0
    penalty_fraction: float = 0.25
    score: str = "exact"

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


# -- lattice geometry ------------------------------------------------------------------------
def lattice_coordinates(lattice) -> np.ndarray:
    """Site coordinates in units of the primitive vectors: cell index + basis position, (N, 3)."""
    basis = lattice.primitive.get_scaled_positions(wrap=True)
    return lattice.cell_index + basis[lattice.basis_index]


def rotary_angles(lattice, n_freq: int, period: list[int]) -> Tensor:
    """Rotary angles 2 pi k u_a / L_a per site, axis a < dimension, k = 1..n_freq and L_a =
    ``period[a]``, (N, dim * n_freq). Periodic on the supercell when its repeats are multiples
    of ``period``."""
    u = lattice_coordinates(lattice)[:, : lattice.dimension]
    L = np.asarray(period, dtype=float)
    k = np.arange(1, n_freq + 1, dtype=float)
    angles = 2 * np.pi * (u / L)[:, :, None] * k[None, None, :]
    return torch.from_numpy(angles.reshape(len(u), -1))


def infinite_lattice_shells(lattice, n_shells: int) -> np.ndarray:
    """The first ``n_shells`` neighbour distances of the infinite lattice (not the supercell)."""
    prim = lattice.primitive
    basis = prim.get_positions()
    reach = n_shells + 2  # shell n lies within n + 2 primitive translations for these lattices
    ranges = [range(-reach, reach + 1) if periodic else range(1) for periodic in prim.pbc]
    shifts = np.array(list(itertools.product(*ranges)), dtype=float) @ prim.cell[:]
    vec = basis[None, :, None, :] - basis[:, None, None, :] + shifts[None, None, :, :]
    dist = np.unique(np.round(np.linalg.norm(vec, axis=-1), 8))
    return dist[dist > 1e-8][:n_shells]


def shell_buckets(lattice, n_shells: int) -> Tensor:
    """Bucket of each site pair: 0 self, k = 1..n_shells the k-th shell, n_shells + 1 beyond, (N, N)."""
    dist = lattice.distances
    buckets = np.full(dist.shape, n_shells + 1, dtype=np.int64)
    tol = 1e-6 * lattice.lattice_constant
    for k, d in enumerate(infinite_lattice_shells(lattice, n_shells), start=1):
        buckets[np.abs(dist - d) < tol] = k
    np.fill_diagonal(buckets, 0)
    return torch.from_numpy(buckets)


def neighbour_table(buckets: Tensor, n_shells: int) -> Tensor:
    """Each site's other sites within the first ``n_shells`` shells, (N, M) int64, -1 padded
    (M = the most any site has)."""
    near = (buckets <= n_shells) & ~torch.eye(len(buckets), dtype=torch.bool, device=buckets.device)
    counts = near.sum(1)
    M = int(counts.max())
    order = torch.argsort((~near).to(torch.int8), dim=1, stable=True)[:, :M]  # near sites first
    return torch.where(torch.arange(M, device=buckets.device) < counts[:, None], order, -1)


def random_orders(batch: int, n_sites: int, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> Tensor:
    """Independent uniformly random site orders, (batch, n_sites) int64."""
    return torch.argsort(_uniform((batch, n_sites), generator, device), dim=1)


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device if generator else device).to(device)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first 2 r channels of x (…, T, hd) pairwise (j, r + j) by the given angles (…, T, r)."""
    r = cos.shape[-1]
    x1, x2, rest = x[..., :r], x[..., r : 2 * r], x[..., 2 * r :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


# -- network ---------------------------------------------------------------------------------
@dataclass
class Geometry:
    """Per-site tables of one supercell: rotary cos/sin (N, r); shell buckets of every site pair
    (N, N) for global attention, or, with ``attention_shells``, each site's neighbours within
    those shells (N, M), -1 padded, and their buckets (N, M)."""

    cos: Tensor
    sin: Tensor
    buckets: Tensor | None
    neighbours: Tensor | None
    neighbour_buckets: Tensor | None


@dataclass
class Pattern:
    """Who attends to whom in one pass. Column 0 of ``allowed`` and ``buckets`` (Bm, T, C) is the
    sink. Global attention: the other columns are the cached then the new tokens. Local
    attention: ``index`` (Bm, T, C) picks each token's own C candidate keys (sink, itself, its
    neighbours) from the key source: [sink, new tokens] without a cache, [sink, site slots]
    with one; ``sites`` (Bm, T) are the new tokens' sites, where the cache stores them."""

    allowed: Tensor
    buckets: Tensor | None
    index: Tensor | None = None
    sites: Tensor | None = None


class Block(nn.Module):
    """Pre-LayerNorm Transformer block with rotary attention, an optional shell bias and an
    attention sink (a per-head learned score for a key of value 0, see the module docstring)."""

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

    def forward(self, h: Tensor, cos: Tensor, sin: Tensor, pattern: Pattern,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """h (B, T, d) new tokens; with a ``cache`` the new tokens' keys/values are written into
        it and its stored ones are attended to (see :class:`KVCache`)."""
        B, T, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if cache is None:
            # the sink: one more key, of value 0 and learned score, that every token attends to
            keys, values = F.pad(k, (0, 0, 1, 0)), F.pad(v, (0, 0, 1, 0))
        else:
            keys, values = cache.write(layer, k, v, pattern.sites)  # the cache's first slot is the sink
        bias = torch.zeros((), dtype=q.dtype, device=q.device)
        if self.shell_bias is not None:
            bias = F.embedding(pattern.buckets[..., 1:], self.shell_bias).permute(0, 3, 1, 2)
        mask = torch.where(pattern.allowed[:, None, :, 1:], bias, float("-inf"))
        mask = mask.expand(mask.shape[0], self.n_head, T, -1)
        mask = torch.cat([self.sink.to(mask.dtype)[None, :, None, None].expand(mask.shape[0], -1, T, 1), mask], -1)
        if pattern.index is None:
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        else:  # each token attends to its own C gathered keys: O(N C) instead of O(N^2)
            keys, values = _gather_keys(keys, pattern.index), _gather_keys(values, pattern.index)
            y = F.scaled_dot_product_attention(q[:, :, :, None], keys, values, attn_mask=mask[:, :, :, None])[:, :, :, 0]
        h = h + self.proj(y.transpose(1, 2).reshape(B, T, d))
        return h + self.mlp(self.ln2(h))


def _gather_keys(source: Tensor, index: Tensor) -> Tensor:
    """source (B, H, S, hd), index (Bm, T, C) with Bm 1 or B -> (B, H, T, C, hd)."""
    B, H, _, hd = source.shape
    Bm, T, C = index.shape
    flat = index.reshape(Bm, 1, T * C, 1).expand(B, H, T * C, hd)
    return source.gather(2, flat).view(B, H, T, C, hd)


class KVCache:
    """Keys and values of the placed (observed) tokens, per layer, in buffers allocated once and
    written in place (concatenating made every sampling step copy the whole cache). Slot 0 is
    the attention sink (key and value 0).

    Global attention: slots 1.. hold the placed tokens in the order placed, then the new tokens
    of one pass; ``sites`` and ``ranks`` (1 or B, length) describe the placed tokens.
    Local attention: slot 1 + j holds the token at site j, and ``site_ranks`` (1 or B, N) the
    rank of each placed site (N + 1 where none is placed yet)."""

    def __init__(self, n_layer: int, n_sites: int, local: bool):
        self.local = local
        self.capacity = n_sites + 1 if local else n_sites + 2
        self.k: list[Tensor | None] = [None] * n_layer
        self.v: list[Tensor | None] = [None] * n_layer
        self.length = 0
        self.sites: Tensor | None = None
        self.ranks: Tensor | None = None
        self.site_ranks: Tensor | None = None

    def __len__(self) -> int:
        return self.length

    def write(self, layer: int, k: Tensor, v: Tensor, sites: Tensor | None) -> tuple[Tensor, Tensor]:
        """Store the new tokens' k, v (B, H, T, hd); return the keys and values to attend to:
        global, views of the sink, placed and new tokens; local, the whole site buffers."""
        if self.k[layer] is None:
            shape = (k.shape[0], k.shape[1], self.capacity, k.shape[3])
            self.k[layer], self.v[layer] = k.new_zeros(shape), v.new_zeros(shape)
        if self.local:
            # a query token borrows its own (unplaced, so never attended) site slot for this pass
            slots = (sites + 1).view(sites.shape[0], 1, -1, 1).expand_as(k)
            self.k[layer].scatter_(2, slots, k)
            self.v[layer].scatter_(2, slots, v)
            return self.k[layer], self.v[layer]
        end = 1 + self.length + k.shape[2]
        self.k[layer][:, :, 1 + self.length : end] = k
        self.v[layer][:, :, 1 + self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, sites: Tensor, ranks: Tensor, site_ranks: Tensor | None) -> None:
        """Keep the first ``sites.shape[1]`` new tokens of the last pass as placed tokens;
        ``site_ranks`` (local attention) already includes them."""
        self.length += sites.shape[1]
        if self.local:
            self.site_ranks = site_ranks
            return
        self.sites = sites if self.sites is None else torch.cat([self.sites, sites], 1)
        self.ranks = ranks if self.ranks is None else torch.cat([self.ranks, ranks], 1)


class Trunk(nn.Module):
    """Token embedding, conditioning MLP and the stack of blocks; returns final token features."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.n_species + 1, config.d_model)  # index K: the mask token
        if config.n_cond:
            self.cond_mlp = nn.Sequential(nn.Linear(config.n_cond, config.d_cond), nn.GELU())
            self.cond_in = nn.ModuleList([nn.Linear(config.d_cond, config.d_model) for _ in range(config.n_layer)])
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model)

    def forward(self, species: Tensor, sites: Tensor, ranks: Tensor, observed: Tensor, cond: Tensor | None,
                geometry: Geometry, causal: bool, cache: KVCache | None = None, n_store: int = 0) -> Tensor:
        """Features (B, T, d) of T new tokens.

        species (B, T) with K for query tokens; sites, ranks, observed (B or 1, T). Past tokens in
        ``cache`` are observed; the first ``n_store`` new tokens (observed) are appended to it.
        A token attends to the observed tokens of strictly lower rank (any observed token when
        not ``causal``) and to itself, within ``attention_shells`` when set.
        """
        if geometry.neighbours is None:
            pattern, site_ranks = _global_pattern(sites, ranks, observed, causal, cache, geometry), None
        else:
            pattern, site_ranks = _local_pattern(sites, ranks, observed, causal, cache, geometry)
        cos, sin = geometry.cos[sites][:, None], geometry.sin[sites][:, None]

        h = self.embed(species)
        c = self.cond_mlp(cond) if cond is not None else None
        for layer, block in enumerate(self.blocks):
            if c is not None:
                h = h + self.cond_in[layer](c)[:, None, :]
            h = block(h, cos, sin, pattern, cache, layer)
        if n_store:
            cache.advance(sites[:, :n_store], ranks[:, :n_store], site_ranks)
        return self.ln_f(h)


def _global_pattern(sites: Tensor, ranks: Tensor, observed: Tensor, causal: bool, cache: KVCache | None,
                    geometry: Geometry) -> Pattern:
    """Keys: the sink, the cached tokens, then the new tokens."""
    past_sites = sites[:, :0] if cache is None or len(cache) == 0 else cache.sites
    past_ranks = ranks[:, :0] if cache is None or len(cache) == 0 else cache.ranks
    key_sites = _cat_broadcast(past_sites, sites)
    key_ranks = _cat_broadcast(past_ranks, ranks)
    key_observed = _cat_broadcast(torch.ones_like(past_sites, dtype=torch.bool), observed)
    allowed = key_observed[:, None, :]
    if causal:
        allowed = allowed & (key_ranks[:, None, :] < ranks[:, :, None])
    n_past, T = past_sites.shape[1], sites.shape[1]
    itself = torch.zeros(T, n_past + T, dtype=torch.bool, device=sites.device)
    itself[:, n_past:] = torch.eye(T, dtype=torch.bool, device=sites.device)
    allowed = F.pad(allowed | itself, (1, 0), value=True)
    buckets = None
    if geometry.buckets is not None:
        buckets = F.pad(geometry.buckets[sites[:, :, None], key_sites[:, None, :]], (1, 0))
    return Pattern(allowed, buckets, sites=sites)


def _local_pattern(sites: Tensor, ranks: Tensor, observed: Tensor, causal: bool, cache: KVCache | None,
                   geometry: Geometry) -> tuple[Pattern, Tensor]:
    """Candidate keys per token: the sink, itself, and the observed tokens on its neighbour sites;
    also the rank of the observed token on each site (N + 1 where there is none)."""
    N, device = geometry.neighbours.shape[0], sites.device
    Bm, T = max(sites.shape[0], ranks.shape[0], observed.shape[0]), sites.shape[1]
    sites_b, ranks_b, observed_b = (t.expand(Bm, T) for t in (sites, ranks, observed))
    unplaced = N + 1
    # the rank (and, without a cache, the token) of each site's observed token; column N is a
    # dump for the tokens that are not observed
    target = torch.where(observed_b, sites_b, N)
    if cache is None or cache.site_ranks is None:
        site_ranks = torch.full((Bm, N + 1), unplaced, dtype=torch.long, device=device)
    else:
        site_ranks = F.pad(cache.site_ranks.expand(Bm, N), (0, 1), value=unplaced)
    site_ranks = site_ranks.scatter(1, target, ranks_b)[:, :N]
    neighbours = geometry.neighbours[sites_b]  # (Bm, T, M), -1 padded
    real = neighbours >= 0
    neighbours = neighbours.clamp(min=0)
    key_ranks = site_ranks.gather(1, neighbours.flatten(1)).view_as(neighbours)
    allowed = real & (key_ranks < (ranks_b[:, :, None] if causal else unplaced))
    if cache is None:
        site_token = torch.zeros((Bm, N + 1), dtype=torch.long, device=device)
        site_token = site_token.scatter(1, target, torch.arange(T, device=device).expand(Bm, T))[:, :N]
        neighbour_index = site_token.gather(1, neighbours.flatten(1)).view_as(neighbours) + 1
        self_index = torch.arange(1, T + 1, device=device).expand(Bm, T)
    else:
        neighbour_index, self_index = neighbours + 1, sites_b + 1
    index = torch.cat([torch.zeros_like(self_index)[..., None], self_index[..., None],
                       torch.where(allowed, neighbour_index, 0)], -1)
    ones = torch.ones((Bm, T, 2), dtype=torch.bool, device=device)
    buckets = None
    if geometry.neighbour_buckets is not None:
        buckets = F.pad(geometry.neighbour_buckets[sites_b], (2, 0))  # sink and itself: bucket 0
    return Pattern(torch.cat([ones, allowed], -1), buckets, index=index, sites=sites_b), site_ranks


def _cat_broadcast(a: Tensor, b: Tensor) -> Tensor:
    """Concatenate along dim 1 after broadcasting the batch dimension (1 or B)."""
    batch = max(a.shape[0], b.shape[0])
    return torch.cat([a.expand(batch, -1), b.expand(batch, -1)], dim=1)


class AnyOrderTransformer(NeuralSampler):
    """Any-order autoregressive Transformer (conditionals) + marginalization network (MaM).

    Orders are (N,) permutations shared by the batch or (B, N) per configuration; ``order=None``
    means the lattice's raster order, the same default for ``sample`` and ``log_prob`` so that
    estimators are exact. Pass ``random_orders(...)`` for random orders.
    """

    def __init__(self, config: TransformerConfig, lattice):
        super().__init__()
        if config.rotary_period is None:
            config = replace(config, rotary_period=[int(r) for r in lattice.repeats[: lattice.dimension]])
        self.config = config
        self.n_species = config.n_species
        self.conditional = Trunk(config)
        self.head = nn.Linear(config.d_model, config.n_species)
        self.marginal = Trunk(config)
        self.marginal_head = nn.Linear(config.d_model, 1)
        self._init_weights()
        self.on_lattice(lattice)

    def _init_weights(self) -> None:
        """All initialisation in one place (GPT-2 style normals). Both heads start at zero weight:
        the conditionals are uniform and ln p(x_S) = -|S| ln K, which are consistent, so the
        penalty starts at zero and the untrained sampler is the uniform distribution."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for head in (self.head, self.marginal_head):
            nn.init.zeros_(head.weight)
        nn.init.constant_(self.marginal_head.bias, -math.log(self.n_species))

    def hyperparameters(self) -> dict:
        return asdict(self.config)

    def on_lattice(self, lattice) -> "AnyOrderTransformer":
        """Run the same weights on another supercell of the same lattice (rebuilds the encodings)."""
        old = getattr(self, "lattice", None)
        if old is not None and (lattice.kind != old.kind or lattice.n_basis != old.n_basis
                                or not np.isclose(lattice.lattice_constant, old.lattice_constant)):
            raise ValueError(
                f"cannot transfer a transformer trained on a {old.kind} lattice (basis {old.n_basis}, "
                f"a = {old.lattice_constant}) to a {lattice.kind} lattice (basis {lattice.n_basis}, "
                f"a = {lattice.lattice_constant}); the lattice kind, basis and constant must match"
            )
        head_dim = self.config.d_model // self.config.n_head
        n_rot = lattice.dimension * self.config.n_freq
        if 2 * n_rot > head_dim:
            raise ValueError(f"rotary encodings need 2 * {lattice.dimension} * n_freq = {2 * n_rot} channels "
                             f"but the head dimension is {head_dim}; lower n_freq or raise d_model / n_head")
        period, repeats = self.config.rotary_period, list(lattice.repeats[: lattice.dimension])
        if len(period) != len(repeats) or any(r % p for r, p in zip(repeats, period)):
            raise ValueError(f"the rotary encodings have periods {period} (the training cell): a supercell "
                             f"must repeat that cell along every axis, got repeats {repeats}")
        self.lattice = lattice
        self.n_sites = lattice.n_sites
        device = self.head.weight.device
        angles = rotary_angles(lattice, self.config.n_freq, period)
        n_bias, n_local = self.config.n_bias_shells, self.config.attention_shells or 0
        buckets = shell_buckets(lattice, max(n_bias, n_local)).to(device) if max(n_bias, n_local) else None
        bias_buckets = buckets.clamp(max=n_bias + 1) if n_bias else None  # beyond n_bias: one shared bias
        neighbours = neighbour_buckets = None
        if n_local:
            neighbours = neighbour_table(buckets, n_local)
            if n_bias:
                neighbour_buckets = bias_buckets.gather(1, neighbours.clamp(min=0))
            bias_buckets = None
        tables = {"rot_cos": torch.cos(angles).float().to(device), "rot_sin": torch.sin(angles).float().to(device),
                  "buckets": bias_buckets, "neighbours": neighbours, "neighbour_buckets": neighbour_buckets}
        for name, table in tables.items():
            self.register_buffer(name, table, persistent=False)
        return self

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.rot_cos, self.rot_sin, self.buckets, self.neighbours, self.neighbour_buckets)

    # -- input checks --------------------------------------------------------------------------
    def _check_x(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_sites:
            raise ValueError(f"expected x of shape (B, {self.n_sites}), got {tuple(x.shape)}")
        if x.is_floating_point() or x.dtype == torch.bool:
            raise ValueError(f"x must hold integer species indices, got dtype {x.dtype}")
        if x.numel() and (x.min() < 0 or x.max() >= self.n_species):
            raise ValueError(f"species indices must lie in [0, {self.n_species}), got {x.min().item()}..{x.max().item()}")
        return x.long()

    def _check_cond(self, cond: Tensor | None, batch: int) -> Tensor | None:
        return self.check_cond(cond, batch, self.config.n_cond, self.head.weight)

    def _check_n_ones(self, n_ones: int | None) -> None:
        if n_ones is None:
            return
        if self.n_species != 2:
            raise ValueError(f"the canonical constraint n_ones needs 2 species, this model has {self.n_species}")
        if not 0 <= n_ones <= self.n_sites:
            raise ValueError(f"n_ones must lie in [0, {self.n_sites}], got {n_ones}")

    def _check_order(self, order: Tensor | None, batch: int) -> Tensor:
        device = self.head.weight.device
        if order is None:
            return torch.arange(self.n_sites, device=device)[None]
        order = torch.as_tensor(order, device=device)
        order = order[None] if order.dim() == 1 else order
        if order.dim() != 2 or order.shape[1] != self.n_sites or order.shape[0] not in (1, batch):
            raise ValueError(f"order must have shape ({self.n_sites},) or ({batch}, {self.n_sites}), got {tuple(order.shape)}")
        if not torch.equal(torch.sort(order, dim=1).values, torch.arange(self.n_sites, device=device).expand_as(order)):
            raise ValueError("each order must be a permutation of the sites 0..N-1")
        return order.long()

    def _check_observed(self, observed: Tensor, batch: int) -> Tensor:
        if observed.dtype != torch.bool or observed.shape != (batch, self.n_sites):
            raise ValueError(f"observed must be a bool tensor of shape ({batch}, {self.n_sites}), "
                             f"got {observed.dtype} {tuple(observed.shape)}")
        return observed

    # -- conditionals and marginals --------------------------------------------------------------
    def _log_softmax(self, logits: Tensor, ones_before: Tensor | None, remaining: Tensor | int,
                     n_ones: int | None) -> Tensor:
        """ln q over species in float64, renormalised over the choices that can still reach n_ones."""
        logits = logits.to(torch.float64)
        if n_ones is not None:
            allowed = canonical_mask(ones_before, remaining, n_ones)
            logits = logits.masked_fill(~allowed, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def conditionals(self, x: Tensor, observed: Tensor, cond: Tensor | None = None,
                     n_ones: int | None = None, order: Tensor | None = None) -> Tensor:
        """ln q(x_i = k | x_S) for every site, (B, N, K) float64, from one forward pass.

        S = ``observed`` (B, N) bool, placed in the order induced by ``order`` (raster if None).
        Rows of observed sites are the point mass on their species (0 there, -inf elsewhere).
        """
        x = self._check_x(x)
        B = x.shape[0]
        observed = self._check_observed(observed, B)
        cond = self._check_cond(cond, B)
        self._check_n_ones(n_ones)
        rank = torch.argsort(self._check_order(order, B), dim=1)
        logits = self._partial_logits(x, observed, rank, cond)
        ones = (x * observed).sum(1, keepdim=True)
        remaining = self.n_sites - observed.sum(1, keepdim=True)
        logq = self._log_softmax(logits, ones, remaining, n_ones)
        point = torch.log(F.one_hot(x, self.n_species).to(torch.float64))
        return torch.where(observed[..., None], point, logq)

    def _partial_logits(self, x: Tensor, observed: Tensor, rank: Tensor, cond: Tensor | None) -> Tensor:
        """Logits (B, N, K) of every site given the observed ones, placed in the order of ``rank``."""
        ranks = torch.where(observed, rank, self.n_sites)  # query tokens see every observed site
        species = torch.where(observed, x, self.n_species)
        sites = torch.arange(self.n_sites, device=x.device)[None]
        h = self.conditional(species, sites, ranks, observed, cond, self.geometry, causal=True)
        return self.head(h)

    def log_marginal(self, x: Tensor, observed: Tensor, cond: Tensor | None = None) -> Tensor:
        """ln p_theta(x_S) from one pass of the marginal network, (B,) float64; 0 for S empty."""
        x = self._check_x(x)
        B = x.shape[0]
        observed = self._check_observed(observed, B)
        cond = self._check_cond(cond, B)
        species = torch.where(observed, x, self.n_species)
        sites = torch.arange(self.n_sites, device=x.device)[None]
        h = self.marginal(species, sites, torch.zeros_like(sites), observed, cond, self.geometry, causal=False)
        per_token = self.marginal_head(h)[..., 0].to(torch.float64)
        return (per_token * observed).sum(1)

    def ordered_conditionals(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                             order: Tensor | None = None) -> Tensor:
        """ln q(x_i = k | sites before i in ``order``) for every site i, (B, N, K) float64.

        One pass over 2N tokens: N observed tokens (causal in the order) and N query tokens,
        the query of site i seeing the observed tokens before i; these are exactly the
        conditionals the sampler computes step by step.
        """
        x = self._check_x(x)
        B, N = x.shape
        cond = self._check_cond(cond, B)
        self._check_n_ones(n_ones)
        order = self._check_order(order, B)
        rank = torch.argsort(order, dim=1)
        sites = torch.arange(N, device=x.device)[None]
        species = torch.cat([x, torch.full_like(x, self.n_species)], dim=1)
        observed = torch.cat([torch.ones_like(sites, dtype=torch.bool), torch.zeros_like(sites, dtype=torch.bool)], 1)
        h = self.conditional(species, torch.cat([sites, sites], 1), torch.cat([rank, rank], 1), observed,
                             cond, self.geometry, causal=True)
        ones_before = remaining = None
        if n_ones is not None:
            x_in_order = x.gather(1, order.expand(B, -1))
            ones_in_order = torch.cumsum(x_in_order, 1) - x_in_order
            ones_before = ones_in_order.gather(1, rank.expand(B, -1))
            remaining = N - rank
        return self._log_softmax(self.head(h[:, N:]), ones_before, remaining, n_ones)

    def log_prob(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                 order: Tensor | None = None) -> Tensor:
        """Exact ln q(x) along ``order`` (raster if None), (B,) float64; -inf if x breaks n_ones."""
        logq = self.ordered_conditionals(x, cond, n_ones, order)
        return logq.gather(-1, x.long()[..., None])[..., 0].sum(1)

    # -- self-consistency ------------------------------------------------------------------------
    def consistency_residuals(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                              order: Tensor | None = None,
                              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Residuals ln p(x_S) + ln q(x_i | x_S) - ln p(x_S + x_i), one random (S, i) per row, and
        ln p(x) - ln q(x) of the full configurations; both (B,) float64.

        S is a uniformly random prefix (length 0..N-1) of ``order``, or of random orders if None.
        """
        step, full, _ = self._penalty_residuals(x, x.shape[0], cond, n_ones, order, generator)
        return step, full

    def _penalty_residuals(self, x: Tensor, n_rows: int, cond: Tensor | None, n_ones: int | None,
                           order: Tensor | None, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`consistency_residuals` of the first ``n_rows`` rows, and ln p_theta(x) of every
        row: the full configurations share the marginal network's pass with the partial ones."""
        x = self._check_x(x)
        B, N = x.shape
        self._check_n_ones(n_ones)
        if n_ones is not None and bool((x.sum(1) != n_ones).any()):
            raise ValueError(f"configurations must have exactly n_ones = {n_ones} ones for the consistency penalty")
        device = x.device
        xp, cp = x[:n_rows], None if cond is None else cond[:n_rows]
        order = (random_orders(n_rows, N, generator, device) if order is None
                 else self._check_order(order, B).expand(B, -1)[:n_rows])
        rank = torch.argsort(order, dim=1)
        t = (_uniform((n_rows, 1), generator, device) * N).long()
        before, upto = rank < t, rank <= t
        site = order.gather(1, t)
        logq = self.conditionals(xp, before, cp, n_ones, order)
        logq_i = logq.gather(1, site[..., None].expand(-1, -1, self.n_species))[:, 0].gather(1, xp.gather(1, site))[:, 0]
        cond3 = None if cond is None else torch.cat([cond, cp, cp])
        logp = self.log_marginal(torch.cat([x, xp, xp]), torch.cat([torch.ones_like(x, dtype=torch.bool), before, upto]),
                                 cond3)
        logp_full, logp_before, logp_upto = logp[:B], logp[B : B + n_rows], logp[B + n_rows :]
        step = logp_before + logq_i - logp_upto
        full = logp_full[:n_rows] - self.log_prob(xp, cp, n_ones, order)
        return step, full, logp_full

    def training_terms(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                       generator: torch.Generator | None = None) -> TrainingTerms:
        """ln q_train(x) of every row (see ``TransformerConfig.score``: the exact ln q along the
        sampling order, or the one-pass marginal), and the self-consistency penalty
        mean(step^2) + full_penalty * mean(full^2) / N on the first ``penalty_fraction`` of the
        rows (samples are independent, so any rows will do)."""
        n_rows = max(1, round(self.config.penalty_fraction * x.shape[0]))
        step, full, logp_full = self._penalty_residuals(x, n_rows, cond, n_ones, None, generator)
        penalty = step.pow(2).mean() + self.config.full_penalty * full.pow(2).mean() / self.n_sites
        log_prob = logp_full if self.config.score == "marginal" else self.log_prob(x, cond, n_ones)
        return TrainingTerms(log_prob, penalty.float(), step.detach().pow(2).mean().sqrt().item())

    @torch.no_grad()
    def consistency_error(self, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                          order: Tensor | None = None, generator: torch.Generator | None = None) -> float:
        """Root mean square of the per-step residual over all rows."""
        step, _ = self.consistency_residuals(x, cond, n_ones, order, generator)
        return step.pow(2).mean().sqrt().item()

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, cond: Tensor | None = None, n_ones: int | None = None,
               generator: torch.Generator | None = None, order: Tensor | None = None,
               use_cache: bool = True) -> tuple[Tensor, Tensor]:
        """Ancestral sampling along ``order`` (raster if None); exact ln q in float64.

        ``use_cache=True`` runs one incremental pass per step over two new tokens (the site just
        placed, appended to the KV cache, and the query for the next site); ``use_cache=False``
        runs a full pass over all N tokens per step. Both consume the same random numbers (one
        uniform per configuration and step) and give the same samples.
        """
        if int(n) < 1:
            raise ValueError(f"number of samples must be >= 1, got {n}")
        cond = self._check_cond(cond, n)
        self._check_n_ones(n_ones)
        order = self._check_order(order, n)
        N, K, device = self.n_sites, self.n_species, self.head.weight.device
        x = torch.zeros(n, N, dtype=torch.long, device=device)
        log_q = torch.zeros(n, dtype=torch.float64, device=device)
        ones = torch.zeros(n, dtype=torch.long, device=device)
        observed = torch.zeros(n, N, dtype=torch.bool, device=device)
        rank = torch.argsort(order, dim=1).expand(n, -1)
        cache = KVCache(self.config.n_layer, N, local=self.config.attention_shells is not None) if use_cache else None
        for t in range(N):
            site = order[:, t : t + 1].expand(n, -1)
            if use_cache:
                logits = self._cached_step(x, order, t, cond, cache)
            else:
                logits = self._partial_logits(x, observed, rank, cond)
                logits = logits.gather(1, site[..., None].expand(-1, -1, K))[:, 0]
            logq_t = self._log_softmax(logits, ones, N - t, n_ones)
            # inverse cdf; dividing by the total makes the last entry exactly 1, so u < 1 never
            # selects past it and a species of probability 0 is never selected
            cdf = torch.cumsum(logq_t.exp(), dim=-1)
            cdf = cdf / cdf[:, -1:]
            u = _uniform((n, 1), generator, device).to(torch.float64)
            xi = (u >= cdf).sum(-1, keepdim=True)
            x.scatter_(1, site, xi)
            observed.scatter_(1, site, True)
            ones += xi[:, 0] == 1
            log_q += logq_t.gather(1, xi)[:, 0]
        return x, log_q

    def _cached_step(self, x: Tensor, order: Tensor, t: int, cond: Tensor | None, cache: KVCache) -> Tensor:
        """Logits for site order[t]: store the site placed at step t-1 and query site order[t] in one pass."""
        n, device = x.shape[0], x.device
        query_site = order[:, t : t + 1]
        query_species = torch.full((n, 1), self.n_species, dtype=torch.long, device=device)
        if t == 0:
            sites, species = query_site, query_species
            ranks = torch.zeros(1, 1, dtype=torch.long, device=device)
            observed = torch.zeros(1, 1, dtype=torch.bool, device=device)
        else:
            placed = order[:, t - 1 : t]
            sites = torch.cat([placed.expand(query_site.shape[0], -1), query_site], 1)
            species = torch.cat([x.gather(1, placed.expand(n, -1)), query_species], 1)
            ranks = torch.tensor([[t - 1, t]], device=device)
            observed = torch.tensor([[True, False]], device=device)
        h = self.conditional(species, sites, ranks, observed, cond, self.geometry, causal=True,
                             cache=cache, n_store=int(t > 0))
        return self.head(h[:, -1])
