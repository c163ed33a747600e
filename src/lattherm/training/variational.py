"""Variational free-energy training of a neural sampler (VAN; science.md §2).

Minimise F_q = E_q[E(x) + ln q(x) / beta] >= F with the score-function gradient and a batch-mean
baseline. In dimensionless form, with R(x) = beta E(x) + ln q(x) = -ln w(x),

    grad beta F_q = E_q[(R - mean R) grad ln q],

so the loss is mean((R - mean R).detach() * ln q_train(x)) + auxiliary loss, both from
:func:`training_terms`. For MADE, and for the transformer by default, that is the exact
ln q. A marginalization model with ``score: marginal`` uses the one-pass marginal ln p_theta(x)
instead, in R too: the gradient is then that of KL(p_theta || p) (Liu-Ramadge-Adams 2024), with
samples from the conditionals standing in for p_theta and the self-consistency penalty pulling
the two together. (Mixing the exact ln q into R with the marginal's score trains markedly
worse: ESS 0.08 vs 0.85 on 4x4 Ising at T = 4.)
The logged F_q, F_IS and ESS always use the sampler's exact ln q.

A model with a marginalization network (the any-order Transformer) adds the MaM self-consistency
penalty [ln p(x_S) + ln q(x_i | x_S) - ln p(x_S + x_i)]^2 along random orders
(:func:`consistency_residuals`), evaluated on a fraction of each batch.
Annealing trains at beta_t = beta (1 - a^t).

Conditioning trains one model for a whole scan. Each batch draws, independently and from the
training generator (so resume stays exact): beta uniformly in [1/T_max, 1/T_min] with a
``temperature_range``; dmu uniformly in ``dmu_range`` (semi-grand systems: the energy is then
E - dmu sum s, the system's own dmu is replaced); n_ones uniformly among the integer counts with
n / N in ``concentration_range`` (canonical systems: one count for the whole batch, replacing
the system's). The model reads cond = (beta_t / beta_ref, dmu / dmu_scale, n_ones / N), the
columns in use in that order (:class:`lattherm.sampling.evaluate.Conditioning`, saved in the
checkpoint), with beta_ref the largest beta and dmu_scale the largest |dmu| of the ranges.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterator

import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from lattherm.errors import LatthermError
from lattherm.hamiltonians.base import SemiGrand
from lattherm.io import CheckpointError, save_checkpoint, write_table
from lattherm.mcmc.moves import MOVES
from lattherm.mcmc.samplers import BoltzmannStream, refine
from lattherm.models import NeuralSampler, model_spec
from lattherm.models.physics import attach_physics, set_physics_beta
from lattherm.models.sampling import random_orders, uniform
from lattherm.models.symmetric import (
    flat_images,
    innermost,
    resolve_symmetries,
    spin_flip_symmetric,
    symmetry_images,
)
from lattherm.sampling.estimators import ess_per_sample, free_energy_is, log_weights
from lattherm.sampling.evaluate import COND_VARIABLES, Conditioning
from lattherm.training.distributed import Ranks, shard_generator
from lattherm.training.checkpoint import (
    FORMAT,
    check_system,
    read_checkpoint,
    rng_states,
    seed_rngs,
    set_rng_states,
    system_description,
)

DTYPES = ("float32", "bfloat16")
# Config fields that may change when a run is resumed: extending it, saving more often, moving it.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "device")
PROGRESS_DIR = ".progress"  # under OUT_DIR: the periodic checkpoint of an unfinished run


class TrainingSettingsError(LatthermError):
    """A training setting of the wrong type or out of range."""


@dataclass
class TrainConfig:
    """Training settings. Exactly one of ``temperature`` (one model for one T) and
    ``temperature_range`` ([T_min, T_max]: one model conditioned on beta) must be set;
    temperatures are in the system's units (J for spin models, K for CE alloys).
    ``dmu_range`` ([lo, hi], semi-grand systems, energy units) and ``concentration_range``
    ([x_lo, x_hi], canonical systems) condition the model on dmu and on composition too.

    ``shards`` > 1 draws each batch as that many blocks of rows, each from its own random stream
    (:func:`~lattherm.training.distributed.shard_generator` of the seed, the step and the block),
    so that data-parallel processes (``torchrun``) can each draw their blocks. The results depend
    on ``shards``, not on how many processes share them: one process with ``shards: 2`` trains
    the same model as two, to float rounding of the gradient sum. With 1, the batch comes from the
    run's one generator as before.

    ``refine_sweeps`` > 0 adds MC refinement and self-distillation (the spin-glass transformer
    paper): each step, that many sweeps of the system's MCMC move (its ``mcmc.move``, else flip or
    swap by ensemble; :func:`lattherm.mcmc.samplers.refine`) take the model's samples towards the
    Boltzmann distribution at the step's beta (and dmu, and composition), and the loss gains
    ``refine_weight`` times the forward-KL term -mean ln q(x_refined). Its gradient vanishes at
    q = p (refined samples of p are samples of p), so the optimum is that of the reverse KL.

    ``example_sweeps`` > 0 adds training by example to training by energy (as Boltzmann generators
    mix them): a parallel-tempering run over the system's MCMC ladder down to ``temperature`` (or
    the colder end of ``temperature_range``, with rungs at both ends;
    :class:`lattherm.mcmc.samplers.BoltzmannStream`, seeded by ``seed``, its state saved in every
    checkpoint) goes on beside training, that many sweeps a step, and each step adds
    ``example_weight`` times -mean ln q of its chains at that temperature (in that range, each
    conditioned on its rung's beta), each through a random
    energy-keeping operation of the cell's space group (:func:`symmetry_images`: the Boltzmann
    distribution is invariant under them, so the images are samples too, and a few ordered
    domains stand for all their variants). This forward KL pulls q onto every mode the chains
    visit, where the reverse KL alone settles on the modes it found first (a spin glass below
    T_c, an alloy at its ordering temperature); fresh samples every step, not a pool revisited,
    so q cannot learn the samples by heart. Its gradient vanishes at q = p too, and importance
    sampling keeps the estimates exact whatever q is. The examples are scored a shard's rows
    (``batch_size / shards``) at a time, so their memory is that of a shard whatever the chains
    and rungs. A model conditioned on composition
    (``concentration_range``) learns from one such run per composition of
    ``example_concentrations`` (default: the two ends of the range; each must be a whole number of
    sites on the cell trained), the examples of each conditioned on it; not with a ``dmu_range``
    (the examples are of the system's own dmu)."""

    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    lr_final: float | None = None
    anneal: float = 0.998
    clip: float | None = 1.0
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "auto"
    temperature: float | None = None
    temperature_range: list[float] | None = None
    dmu_range: list[float] | None = None
    concentration_range: list[float] | None = None
    dtype: str = "float32"
    shards: int = 1
    refine_sweeps: int = 0
    refine_weight: float = 1.0
    example_sweeps: int = 0
    example_weight: float = 1.0
    example_concentrations: list[float] | None = None

    def __post_init__(self) -> None:
        for name, minimum in (("steps", 1), ("batch_size", 2), ("checkpoint_every", 1), ("seed", 0), ("shards", 1),
                              ("refine_sweeps", 0), ("example_sweeps", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise TrainingSettingsError(f"training {name} = {value!r} must be an integer >= {minimum}")
        if self.batch_size % self.shards:
            raise TrainingSettingsError(f"training batch_size = {self.batch_size} must be a multiple of "
                                        f"shards = {self.shards}")
        for name in ("lr", "anneal", "clip", "temperature"):
            value = getattr(self, name)
            if value is not None and not _finite(value):
                raise TrainingSettingsError(f"training {name} = {value!r} must be a finite number")
        if not self.lr > 0:
            raise TrainingSettingsError(f"training lr = {self.lr!r} must be positive")
        if self.lr_final is not None and not (_finite(self.lr_final) and 0 < self.lr_final <= self.lr):
            raise TrainingSettingsError(f"training lr_final = {self.lr_final!r} must lie in (0, lr = {self.lr}] or be null")
        if not 0 <= self.anneal < 1:
            raise TrainingSettingsError(f"training anneal = {self.anneal!r} must lie in [0, 1)")
        for name in ("refine_weight", "example_weight"):
            value = getattr(self, name)
            if not (_finite(value) and value > 0):
                raise TrainingSettingsError(f"training {name} = {value!r} must be a positive number")
        if self.clip is not None and not self.clip > 0:
            raise TrainingSettingsError(f"training clip = {self.clip!r} must be positive or null")
        if self.dtype not in DTYPES:
            raise TrainingSettingsError(f"training dtype = {self.dtype!r} must be one of {DTYPES}")
        if (self.temperature is None) == (self.temperature_range is None):
            raise TrainingSettingsError("training settings need exactly one of temperature and temperature_range, got "
                                        f"temperature = {self.temperature!r}, temperature_range = {self.temperature_range!r}")
        if self.example_sweeps and self.dmu_range is not None:
            raise TrainingSettingsError(f"training example_sweeps = {self.example_sweeps} takes no dmu_range: the "
                                        "examples are of the system's own dmu")
        if self.temperature is not None:
            self.temperature = float(self.temperature)
            if not self.temperature > 0:
                raise TrainingSettingsError(f"training temperature = {self.temperature!r} must be positive")
        else:
            self.temperature_range = _range("temperature_range", self.temperature_range, 0.0, math.inf)
            if self.temperature_range[0] == 0:
                raise TrainingSettingsError(f"training temperature_range = {self.temperature_range} must start above 0")
        if self.dmu_range is not None:
            self.dmu_range = _range("dmu_range", self.dmu_range, -math.inf, math.inf)
        if self.concentration_range is not None:
            self.concentration_range = _range("concentration_range", self.concentration_range, 0.0, 1.0)
        if self.example_concentrations is not None:
            self._check_example_concentrations()

    def _check_example_concentrations(self) -> None:
        values, lo_hi = self.example_concentrations, self.concentration_range
        if lo_hi is None or not self.example_sweeps:
            raise TrainingSettingsError(f"training example_concentrations = {values!r} needs example_sweeps > 0 and a "
                                        "concentration_range")
        if not (isinstance(values, list) and values and all(_finite(v) for v in values)
                and all(lo_hi[0] - 1e-9 <= v <= lo_hi[1] + 1e-9 for v in values) and len(set(values)) == len(values)):
            raise TrainingSettingsError(f"training example_concentrations = {values!r} must be distinct numbers within "
                                        f"concentration_range = {lo_hi}")
        self.example_concentrations = [float(v) for v in values]

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainingSettingsError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**d)


def _range(name: str, values, lowest: float, highest: float) -> list[float]:
    """Check a [lo, hi] setting: finite, lowest <= lo < hi <= highest (a single value is a
    fixed setting of the system, not a range)."""
    if not isinstance(values, (list, tuple)) or len(values) != 2 or not all(_finite(v) for v in values) \
            or not lowest <= values[0] < values[1] <= highest:
        raise TrainingSettingsError(f"training {name} = {values!r} must be [lo, hi] with {lowest} <= lo < hi <= {highest}")
    return [float(v) for v in values]


def _finite(value) -> bool:
    """A real number (not a bool, which YAML's `true` gives) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_conditioning(config: TrainConfig, system) -> Conditioning | None:
    """The conditioning ``config`` trains on ``system`` (None: unconditional); checks that each
    range fits the system's ensemble."""
    if config.dmu_range is not None and system.ensemble != "semi_grand":
        raise ValueError(f"dmu_range needs a semi_grand system; {system.name!r} is {system.ensemble}")
    if config.concentration_range is not None and system.ensemble != "canonical":
        raise ValueError(f"concentration_range needs a canonical system; {system.name!r} is {system.ensemble}")
    ranges = {"beta": config.temperature_range, "dmu": config.dmu_range, "concentration": config.concentration_range}
    variables = tuple(v for v in COND_VARIABLES if ranges[v] is not None)
    if not variables:
        return None
    scales = {}
    if config.temperature_range is not None:
        scales["beta"] = max(system.beta(t) for t in config.temperature_range)
    if config.dmu_range is not None:
        scales["dmu"] = max(abs(d) for d in config.dmu_range)  # > 0 since lo < hi
    return Conditioning(variables, scales)


def concentration_counts(concentration_range: list[float], n_sites: int) -> list[int]:
    """The numbers of species-1 sites n with x_lo <= n / n_sites <= x_hi."""
    lo, hi = concentration_range
    eps = 1e-9  # so that a range edge given as a decimal (e.g. 1/3 as 0.3333333333) still counts
    counts = [n for n in range(n_sites + 1) if lo - eps <= n / n_sites <= hi + eps]
    if not counts:
        raise ValueError(f"concentration_range {concentration_range} contains no composition n / {n_sites}")
    return counts


@dataclass
class TrainingTerms:
    """What one training step needs from a model, for a batch x of its own samples."""

    log_prob: Tensor  # ln q_train(x), (B,), differentiable: the score of the variational loss
    auxiliary_loss: Tensor  # scalar added to the loss
    consistency_error: float  # RMS self-consistency residual; NaN for models without a marginal network


def training_terms(model: NeuralSampler, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                   generator: torch.Generator | None = None) -> TrainingTerms:
    """ln q_train(x) of every row and the auxiliary loss. Without a marginal network: the exact
    ln q, no auxiliary loss. With one: ln q_train is the exact ln q along the sampling order or
    the one-pass marginal (``score``), and the penalty mean(step^2) + full_penalty * mean(full^2) / N
    is taken on the first ``penalty_fraction`` of the rows (samples are independent, so any rows do);
    ``generator`` draws its orders and prefixes. A symmetrised model (spin flip, lattice) takes
    the penalty of its network on the same rows, and its exact (or marginal) ln q_sym."""
    base = innermost(model)
    if not base.has_marginal:
        return TrainingTerms(model.log_prob(x, cond=cond, n_ones=n_ones), x.new_zeros((), dtype=torch.float32), math.nan)
    config = base.config
    n_rows = max(1, round(config.penalty_fraction * x.shape[0]))
    step, full, logp_full = consistency_residuals(base, x, cond, n_ones, generator=generator, n_rows=n_rows)
    penalty = step.pow(2).mean() + config.full_penalty * full.pow(2).mean() / base.n_sites
    if config.score == "marginal" and base is not model:  # the mixture's marginal: every image
        images = flat_images(model, x)[1:]  # the first is x itself, whose ln p is logp_full
        k, B = images.shape[0] + 1, x.shape[0]
        others = base.log_marginal(images.reshape(-1, x.shape[1]), torch.ones_like(images.reshape(-1, x.shape[1]),
                                   dtype=torch.bool), None if cond is None else cond.repeat(k - 1, 1))
        log_prob = torch.logsumexp(torch.cat([logp_full[None], others.view(k - 1, B)]), 0) - math.log(k)
    elif config.score == "marginal":
        log_prob = logp_full
    else:
        log_prob = model.log_prob(x, cond, n_ones)
    return TrainingTerms(log_prob, penalty.float(), step.detach().pow(2).mean().sqrt().item())


def consistency_residuals(model: NeuralSampler, x: Tensor, cond: Tensor | None = None, n_ones: int | None = None,
                          order: Tensor | None = None, generator: torch.Generator | None = None,
                          n_rows: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """MaM self-consistency residuals of the first ``n_rows`` rows (all if None), (n_rows,) float64:
    step = ln p(x_S) + ln q(x_i | x_S) - ln p(x_S + x_i) for one uniformly random prefix S of
    ``order`` (of the model's tokens: sites, or patches; random orders if None) and the next
    token i, and full = ln p(x) - ln q(x) along that order; and ln p(x) of every row, (B,): the
    full configurations share the marginal network's one pass with the partial ones."""
    x = model.check_x(x)
    B = x.shape[0]
    n_rows = B if n_rows is None else n_rows
    model.check_n_ones(n_ones)
    if n_ones is not None and bool((x.sum(1) != n_ones).any()):
        raise ValueError(f"configurations must have exactly n_ones = {n_ones} ones for the consistency penalty")
    xp, cp = x[:n_rows], None if cond is None else cond[:n_rows]
    patches = model.patches.to(x.device)
    M = len(patches)
    order = random_orders(n_rows, M, generator, x.device) if order is None else \
        torch.as_tensor(order, device=x.device).reshape(-1, M).expand(B, -1)[:n_rows]
    rank = torch.argsort(order, dim=1)
    t = (uniform((n_rows, 1), generator, x.device) * M).long()
    site_rank = torch.empty_like(xp)
    site_rank[:, patches] = rank[:, :, None]  # every site takes the rank of its token
    before, upto = site_rank < t, site_rank <= t
    token = order.gather(1, t)
    logq = model.conditionals(xp, before, cp, n_ones, order)
    logq_i = logq[torch.arange(n_rows, device=x.device), token[:, 0]].gather(1, model.tokens(xp).gather(1, token))[:, 0]
    logp = model.log_marginal(torch.cat([x, xp, xp]), torch.cat([torch.ones_like(x, dtype=torch.bool), before, upto]),
                              None if cond is None else torch.cat([cond, cp, cp]))
    logp_full, logp_before, logp_upto = logp[:B], logp[B : B + n_rows], logp[B + n_rows :]
    return logp_before + logq_i - logp_upto, logp_full[:n_rows] - model.log_prob(xp, cp, n_ones, order), logp_full


@dataclass
class TrainResult:
    model: NeuralSampler
    log: pd.DataFrame
    checkpoint_path: Path | None
    conditioning: Conditioning | None  # what the model's cond holds, for evaluate()


def train(model: NeuralSampler, system, config: TrainConfig, out_dir=None, progress: bool = True,
          progress_dir=None) -> TrainResult:
    """Train ``model`` on ``system``; ``progress`` shows a progress bar on a terminal.

    With ``out_dir``, the run saves its state (checkpoint.pt and log.csv) every
    ``checkpoint_every`` steps to ``progress_dir`` (default OUT_DIR/.progress), writes the final
    checkpoint.pt and log.csv to ``out_dir`` at the end, and then removes the progress files. A
    workflow manager that deletes the outputs of an interrupted job (Snakemake does) thus leaves
    the progress intact. A run resumes from whichever of the two checkpoints is further along:
    the progress one after an interruption, OUT_DIR's to extend a finished run. On SIGTERM
    (what a cluster sends on preemption) it saves its progress at the end of the current step
    and exits with status 143.

    The model must be freshly built (seeded by the caller) for a new run; on resume its
    weights are replaced by the checkpoint's.
    """
    conditioning = training_conditioning(config, system)
    variables = [] if conditioning is None else list(conditioning.variables)
    n_cond = model.hyperparameters().get("n_cond", 0)
    if n_cond != len(variables):
        raise ValueError(f"the training settings condition on {variables}, which needs a model with "
                         f"n_cond = {len(variables)}; got n_cond = {n_cond}")
    n_sites = system.n_sites
    # z2_symmetric: auto -> the spin-flip mixture where the training distribution is symmetric;
    # lattice_symmetric: auto -> the point-group mixture on cluster expansions
    symmetric = (config.dmu_range is None and config.concentration_range is None
                 and spin_flip_symmetric(system.hamiltonian, system.n_ones))
    model = resolve_symmetries(model, system, symmetric)
    counts = None if config.concentration_range is None else concentration_counts(config.concentration_range, n_sites)
    if model.n_sites != system.n_sites:
        raise ValueError(f"model has {model.n_sites} sites, system {system.name!r} has {system.n_sites}")
    device = resolve_device(config.device)
    model.to(device)
    hamiltonian = system.hamiltonian.to(device)
    # A drawn dmu replaces the system's: keep the Hamiltonian without its semi-grand term.
    base = hamiltonian.base if isinstance(hamiltonian, SemiGrand) else hamiltonian
    # physics_logits: the tables of this cell's Hamiltonian (without the semi-grand term when dmu
    # is drawn: the model then reads dmu from cond), beta from cond or set every step
    attach_physics(model, hamiltonian if config.dmu_range is None else base, conditioning)
    refine_move = None  # refine_sweeps: the system's MCMC move, checked against what it will sample
    if config.refine_sweeps:
        move_class = MOVES[system.config.move]
        try:
            move_class.check(hamiltonian if config.dmu_range is None else SemiGrand(base, config.dmu_range[1]),
                             system.n_ones)
        except ValueError as exc:
            raise TrainingSettingsError(f"training refine_sweeps = {config.refine_sweeps}: the system's mcmc.move "
                                        f"{system.config.move!r} cannot refine its samples: {exc}") from None
        refine_move = move_class(hamiltonian)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator(device=device)
    if config.temperature_range is not None:
        beta_lo, beta_hi = sorted(system.beta(t) for t in config.temperature_range)
    else:
        beta_lo = beta_hi = system.beta(config.temperature)

    ranks = Ranks()  # data-parallel processes (torchrun), each drawing its own shards of the batch
    if config.shards % ranks.size:
        raise TrainingSettingsError(f"training shards = {config.shards} must be a multiple of the "
                                    f"{ranks.size} training processes")
    my_shards = range(ranks.rank * config.shards // ranks.size, (ranks.rank + 1) * config.shards // ranks.size)
    per_shard = config.batch_size // config.shards

    ckpt_path = progress_path = None
    if out_dir is not None:
        ckpt_path = Path(out_dir) / "checkpoint.pt"
        progress_path = (Path(out_dir) / PROGRESS_DIR if progress_dir is None else Path(progress_dir)) / "checkpoint.pt"
    rows: list[dict] = []
    start = 0
    saved = [(path, read_checkpoint(path, device)) for path in (progress_path, ckpt_path)
             if path is not None and path.exists()]
    if saved:
        path, state = max(saved, key=lambda found: found[1]["step"])
        _check_resume(path, state, model, system, config)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        set_rng_states(state["rng"], generator)
        start, rows = state["step"], list(state["log"])
        if progress and ranks.main:
            print(f"resuming from step {start} of {config.steps} ({path})", file=sys.stderr)
    else:
        seed_rngs(config.seed, generator)
    ranks.broadcast(model.state_dict().values())  # one model on every process, whatever its seed
    # example_sweeps: the same tempering runs on every process (same seeds, same states)
    streams, images = [], None
    if config.example_sweeps:
        streams = example_streams(system, config, conditioning, state.get("examples") if saved else None, device)
        images = symmetry_images(system)
        images = None if images is None else images.to(device)

    def checkpoint(path: Path, step: int) -> None:
        save_checkpoint(path, {
            "format": FORMAT, "model_spec": model_spec(model), "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict(), "step": step, "config": asdict(config),
            "system": system_description(system), "rng": rng_states(generator), "log": rows,
            "conditioning": None if conditioning is None else conditioning.to_dict(),
            "examples": [examples.stream.state.to(torch.int8) for examples in streams] or None,
        })
        write_table(path.parent / "log.csv", pd.DataFrame(rows))

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.dtype == "bfloat16")
    wall_offset = rows[-1]["wall_time"] if rows else 0.0
    t0 = time.perf_counter()

    def uniform() -> float:
        return torch.rand((), dtype=torch.float64, device=device, generator=generator).item()

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="train",
               disable=not (progress and ranks.main and sys.stderr.isatty()))
    with _sigterm_flag(enabled=progress_path is not None) as terminated:
        for step in bar:
            optimizer.param_groups[0]["lr"] = learning_rate(config, step)
            beta = beta_lo + (beta_hi - beta_lo) * uniform()
            beta_t = beta * (1.0 - config.anneal ** (step + 1))
            set_physics_beta(model, beta_t)  # physics_logits at this step's beta (unless beta comes from cond)
            drawn = {}
            if config.dmu_range is not None:
                lo, hi = config.dmu_range
                drawn["dmu"] = lo + (hi - lo) * uniform()
            n_ones = system.n_ones
            if counts is not None:
                n_ones = counts[int(torch.randint(len(counts), (), device=device, generator=generator))]
                drawn["concentration"] = n_ones / n_sites
            cond = None if conditioning is None else conditioning.features(
                per_shard, beta_t, dmu=drawn.get("dmu"), n_ones=n_ones, n_sites=n_sites).to(device)
            energy_fn = hamiltonian if config.dmu_range is None else SemiGrand(base, drawn["dmu"])
            move = refine_move
            if move is not None and config.dmu_range is not None:  # a move on this step's energy
                move = type(refine_move)(energy_fn)
            if n_ones is not None and not 0 < n_ones < n_sites:  # one configuration: nothing to refine
                move = None
            drawn_examples = [(examples, examples.stream.draw(step)) for examples in streams]
            with autocast:
                blocks = []  # this process's shards: (log_w, reward, training terms, refinement KL)
                for shard in my_shards:
                    rng = generator if config.shards == 1 else shard_generator(config.seed, step, shard, device)
                    x, log_q = model.sample(per_shard, cond=cond, n_ones=n_ones, generator=rng)
                    energy = energy_fn.energy(x)
                    terms = training_terms(model, x, cond=cond, n_ones=n_ones, generator=rng)
                    reward = beta_t * energy + terms.log_prob.detach().to(torch.float64)
                    forward_kl = 0.0
                    if move is not None:  # the shard's own rows, from the shard's own stream
                        with torch.autocast(device.type, enabled=False):  # float64 energy differences
                            beta_rows = torch.full((per_shard,), beta_t, dtype=torch.float64, device=device)
                            x_refined = refine(move, x, beta_rows, config.refine_sweeps, rng)
                        forward_kl = -config.refine_weight * model.log_prob(x_refined, cond=cond, n_ones=n_ones).mean()
                    blocks.append((log_weights(energy, log_q, beta_t), reward, terms, forward_kl))
                # the whole batch's weights and rewards, in shard order, on every process
                log_w = ranks.gather(torch.cat([b[0] for b in blocks]))
                baseline = ranks.gather(torch.cat([b[1] for b in blocks])).mean()
                # each shard's share of mean((R - mean R) ln q) + the weighted refinement KLs, and the
                # mean of the shards' penalties
                loss = sum((((reward - baseline).to(torch.float32) * terms.log_prob).mean()
                            + forward_kl) * (per_shard / config.batch_size)
                           + terms.auxiliary_loss / config.shards for _, reward, terms, forward_kl in blocks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss_here = loss.detach()  # one .item() a step, after the examples: no device sync per chunk
            for examples, seen in drawn_examples:  # the same examples on every process (images from the
                if images is not None:              # shared generator): scored once, each process its shards' share
                    image = images[torch.randint(len(images), (len(seen),), device=device, generator=generator)]
                    seen = seen.gather(1, image)
                weight = config.example_weight * len(my_shards) / config.shards / len(drawn_examples) / len(seen)
                conds = itertools.repeat(None) if examples.cond is None else examples.cond.split(per_shard)
                # a shard's rows at a time, each chunk's gradient accumulated as it goes: the chains
                # x target rungs of a tempering run outnumber a batch (a 2D glass: 640 rows of 256 sites)
                for chunk, cond_chunk in zip(seen.split(per_shard), conds):
                    with autocast:
                        example_kl = -weight * model.log_prob(chunk, cond=cond_chunk,
                                                              n_ones=examples.stream.n_ones).sum()
                    example_kl.backward()
                    loss_here = loss_here + example_kl.detach()
            ranks.sum_gradients(model.parameters())
            if config.clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            consistency = [b[2].consistency_error for b in blocks]
            if config.shards == 1:
                loss_value, consistency_error, stop = loss_here.item(), consistency[0], terminated.is_set()
            else:  # sums over the processes: the loss, the shards' mean squared residuals, SIGTERMs
                totals = ranks.sum(torch.tensor([loss_here.item(), sum(c * c for c in consistency),
                                                 float(terminated.is_set())], dtype=torch.float64, device=device))
                loss_value, consistency_error, stop = (totals[0].item(), math.sqrt(totals[1].item() / config.shards),
                                                       totals[2].item() > 0)

            f_is, f_is_err = free_energy_is(log_w, beta_t)
            rows.append({
                "step": step + 1, "beta": beta_t, "temperature": system.temperature(beta_t), **drawn,
                "F_q": -log_w.mean().item() / beta_t, "F_IS": f_is, "F_IS_err": f_is_err,
                "ESS": ess_per_sample(log_w), "consistency_error": consistency_error,
                "loss": loss_value, "lr": optimizer.param_groups[0]["lr"],
                "wall_time": wall_offset + time.perf_counter() - t0,
            })
            bar.set_postfix(F_q=f"{rows[-1]['F_q']:.4f}", ESS=f"{rows[-1]['ESS']:.3f}")
            periodic = progress_path is not None and (step + 1) % config.checkpoint_every == 0
            if step + 1 < config.steps and (periodic or stop):
                if ranks.main:
                    checkpoint(progress_path, step + 1)
                ranks.barrier()
                if stop:
                    raise SystemExit(128 + signal.SIGTERM)  # the status of a process SIGTERM ended
        if ckpt_path is not None and ranks.main:  # still under the flag: a SIGTERM now lets the run finish
            checkpoint(ckpt_path, config.steps)
            for done in (progress_path, progress_path.parent / "log.csv"):
                done.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # kept if not empty (a user's directory, say)
                progress_path.parent.rmdir()
        ranks.barrier()
    return TrainResult(model=model, log=pd.DataFrame(rows), checkpoint_path=ckpt_path, conditioning=conditioning)


@dataclass
class Examples:
    """One tempering run of training by example and the cond of its draws' rows."""

    stream: BoltzmannStream
    cond: Tensor | None


def example_streams(system, config: TrainConfig, conditioning: Conditioning | None, states: list | None,
                    device: torch.device) -> list[Examples]:
    """The tempering runs of training by example (:class:`TrainConfig`): one at the system's own
    composition, or one per composition of ``example_concentrations`` (a composition-conditioned
    model), resumed from ``states`` (a checkpoint's) when given."""
    if config.concentration_range is None:
        compositions = [system.n_ones]
    else:
        wanted = config.example_concentrations or config.concentration_range
        compositions = [round(x * system.n_sites) for x in wanted]
        off = [x for x, n in zip(wanted, compositions) if abs(x * system.n_sites - n) > 1e-6]
        if off:
            raise TrainingSettingsError(f"training example_concentrations = {wanted}: {off} is not a whole number of "
                                        f"the {system.n_sites} sites of the cell")
    if states is not None and len(states) != len(compositions):
        raise CheckpointError(f"the checkpoint holds {len(states)} example runs; these settings make {len(compositions)}")
    temperatures = config.temperature_range or [config.temperature]
    out = []
    for k, n_ones in enumerate(compositions):
        try:  # each run its own seed; the first the run's, as with one composition
            stream = BoltzmannStream(replace(system, n_ones=n_ones), temperatures, config.example_sweeps,
                                     seed=config.seed + 1_000_003 * k, state=None if states is None else states[k],
                                     device=device)
        except LatthermError as exc:
            raise TrainingSettingsError(f"training example_sweeps = {config.example_sweeps}: {exc}") from None
        cond = None if conditioning is None else torch.cat(
            [conditioning.features(stream.chains, beta, n_ones=n_ones, n_sites=system.n_sites)
             for beta in stream.target_betas]).to(device)
        out.append(Examples(stream, cond))
    return out


@contextlib.contextmanager
def _sigterm_flag(enabled: bool) -> Iterator[threading.Event]:
    """An event that SIGTERM sets instead of ending the process, while the block runs (only in
    the main thread, the one Python delivers signals to)."""
    terminated = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield terminated
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: terminated.set())
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)


def learning_rate(config: TrainConfig, step: int) -> float:
    """The lr of step ``step`` (0-based): ``lr`` throughout, or from ``lr`` down to ``lr_final``
    along a half cosine over the run's steps (a function of the step, so resuming keeps it)."""
    if config.lr_final is None:
        return config.lr
    done = step / max(config.steps - 1, 1)
    return config.lr_final + (config.lr - config.lr_final) * 0.5 * (1 + math.cos(math.pi * done))


def _check_resume(path: Path, state: dict, model: NeuralSampler, system, config: TrainConfig) -> None:
    check_system(path, state["system"], system, same_size=True, same_dmu=config.dmu_range is None)
    if state["model_spec"] != model_spec(model):
        raise CheckpointError(f"checkpoint {path} holds the model {state['model_spec']}, "
                              f"not the requested {model_spec(model)}")
    # Through TrainConfig, so settings added since the checkpoint was written take their defaults.
    saved = {k: v for k, v in asdict(TrainConfig.from_dict(state["config"])).items() if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        raise CheckpointError(f"checkpoint {path} training settings differ in {diff}; use a new output directory")
    if state["step"] > config.steps:
        raise CheckpointError(f"checkpoint {path} is at step {state['step']}, beyond the requested "
                              f"{config.steps} steps")
