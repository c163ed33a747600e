"""Batched Markov-chain Monte Carlo in torch: many chains, one (B, N) tensor.

Every chain has its own inverse temperature (a (B,) tensor), so a temperature scan or a
parallel-tempering ladder is one batch. The trial steps are :mod:`lattherm.mcmc.moves` (flip,
swap, Wolff); this module drives them: random starts, sweeps, replica exchange, recording of the
energy and the observables (observers, from :mod:`lattherm.observables`), and tidy tables.

Energies are float64 totals, recomputed exactly after every recorded sweep (no drift).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from lattherm.errors import LatthermError
from lattherm.exact.overlap import overlap_values, susceptibility
from lattherm.hamiltonians.base import Hamiltonian
from lattherm.hamiltonians.ising import GaussianBonds, gaussian_bonds
from lattherm.mcmc.analysis import jackknife, summarize
from lattherm.mcmc.moves import MOVES, Move, colour_classes
from lattherm.observables import Observable, heat_capacity, link_overlap, overlap, standard_observables
from lattherm.sampling.overlap import effective_pair_count, histogram_errors, overlap_histogram

# MOVES and colour_classes live in moves.py and stay importable from here
__all__ = ["MOVES", "ChainResult", "Move", "colour_classes", "energy_samples", "initial_configurations", "overlap_tempering",
           "parallel_tempering", "partner_link_overlap", "partner_overlap", "refine", "run_chains", "scan", "scan_with_samples",
           "summarize_chains"]


# -- replica exchange ---------------------------------------------------------------------------
def _exchange(x: Tensor, log_ratio: Tensor, parity: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Replica exchange between neighbouring rungs k, k+1 (k of the given parity).

    Rows are ordered (rung, chain); ``log_ratio`` (K-1, R) is the log acceptance ratio of each
    exchange (:meth:`lattherm.mcmc.moves.Move.exchange_log_ratio`: temperatures, or VCSGC's phis).
    Accept with min(1, exp(log_ratio)) and exchange the configurations; returns (accepted
    (K-1, R) bool, attempted (K-1,) bool).
    """
    k_rungs, n_chains = log_ratio.shape[0] + 1, log_ratio.shape[1]
    attempted = torch.zeros(k_rungs - 1, dtype=torch.bool, device=x.device)
    attempted[parity::2] = True
    u = torch.rand(log_ratio.shape, generator=gen, device=x.device, dtype=torch.float64)
    ok = (torch.log(u) < log_ratio) & attempted[:, None]
    xs = x.view(k_rungs, n_chains, -1)
    lower, upper = xs[:-1].clone(), xs[1:].clone()
    xs[:-1] = torch.where(ok[:, :, None], upper, lower)
    xs[1:] = torch.where(ok[:, :, None], lower, xs[1:])
    return ok, attempted


# -- driver -------------------------------------------------------------------------------------
@dataclass
class ChainResult:
    """Time series of a batch of chains: row r of every series belongs to chain r at ``betas[r]``.

    Attributes:
        betas: inverse temperature of each chain (row), shape (B,).
        group: index of the beta-ladder entry of each chain, shape (B,).
        series: name -> (B, T) float64 array per recorded sweep ("energy" and observables).
        acceptance: per chain, (B,), as the move defines it (``Move.acceptance``): accepted trials /
            trials (flip/swap); for Wolff the mean cluster size divided by N.
        exchange_acceptance: with replica exchange only, acceptance of each neighbouring pair (K-1,).
        round_trips: with replica exchange only, round trips completed by all walkers together
            (first rung -> last -> first, :class:`RoundTrips`).
        final: last configurations (B, N).
        trials: total trials over all chains, ``Move.trials_per_sweep`` per sweep (flip/swap: N
            single-site trials; wolff: one cluster flip).
        seconds: wall time of the sweeps.
    """

    betas: np.ndarray
    group: np.ndarray
    series: dict[str, np.ndarray]
    acceptance: np.ndarray
    final: Tensor
    trials: int
    seconds: float
    exchange_acceptance: np.ndarray | None = field(default=None)
    round_trips: int | None = field(default=None)


class RoundTrips:
    """The walkers of a replica-exchange ladder (K rungs, R chains each): which walker each row
    holds, moved by every accepted exchange, and the round trips each completes from the first
    rung to the last and back (for a tempering ladder hottest -> coldest -> hottest), the figure
    of merit of a ladder."""

    def __init__(self, k_temps: int, n_chains: int, device) -> None:
        self.k_temps, self.n_chains = k_temps, n_chains
        self.holder = torch.arange(k_temps * n_chains, device=device)  # the walker in each row
        self.reached_cold = torch.zeros(k_temps * n_chains, dtype=torch.bool, device=device)  # since its last hot visit
        self.seen_hot = self.holder < n_chains  # the walkers that start at the hottest temperature
        self.trips = torch.zeros(k_temps * n_chains, dtype=torch.int64, device=device)

    def exchange(self, accepted: Tensor) -> None:
        """Apply the (K-1, R) accepted exchanges of :func:`_exchange`, then count arrivals."""
        held = self.holder.view(self.k_temps, self.n_chains)
        lower, upper = held[:-1].clone(), held[1:].clone()
        held[:-1] = torch.where(accepted, upper, lower)
        held[1:] = torch.where(accepted, lower, held[1:])
        temperature = torch.empty_like(self.holder)
        temperature[self.holder] = torch.arange(len(self.holder), device=self.holder.device) // self.n_chains
        hot, cold = temperature == 0, temperature == self.k_temps - 1
        self.trips += hot & self.reached_cold
        self.reached_cold = (self.reached_cold | (cold & self.seen_hot)) & ~hot
        self.seen_hot |= hot


def initial_configurations(n_sites: int, n_rows: int, n_ones: int | None, gen: torch.Generator,
                           device: torch.device) -> Tensor:
    """Random starts: independent fair coins, or a random placement of exactly n_ones ones."""
    if n_ones is None:
        return torch.randint(2, (n_rows, n_sites), generator=gen, device=device)
    order = torch.rand((n_rows, n_sites), generator=gen, device=device).argsort(dim=1)
    return (order < n_ones).long()


def _check_run(betas: np.ndarray, n_chains: int, n_sweeps: int, burn_in: int, thin: int) -> None:
    if betas.ndim != 1 or len(betas) == 0 or not np.all(np.isfinite(betas)) or np.any(betas < 0):
        raise ValueError(f"beta must be one or more finite non-negative numbers, got {betas}")
    if n_chains < 1 or n_sweeps < 1:
        raise ValueError(f"n_chains and n_sweeps must be positive, got {n_chains}, {n_sweeps}")
    if burn_in < 0 or thin < 1 or burn_in >= n_sweeps:
        raise ValueError(f"need 0 <= burn_in < n_sweeps and thin >= 1, got burn_in={burn_in}, thin={thin}")


def _start_rows(start, rows: int, n_sites: int, n_ones: int | None, device) -> Tensor:
    x = torch.as_tensor(start, device=device).long()
    x = x.expand(rows, n_sites).clone() if x.dim() == 1 else x.clone()
    if x.shape != (rows, n_sites) or not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"start must be 0/1 of shape ({n_sites},) or ({rows}, {n_sites}), got {tuple(x.shape)}")
    if n_ones is not None and not bool((x.sum(dim=1) == n_ones).all()):
        raise ValueError(f"every start must hold n_ones = {n_ones} ones")
    return x


def _resolve_move(move: Move | str, hamiltonian: Hamiltonian, n_ones: int | None) -> Move:
    """The move to run, checked against the Hamiltonian and composition; a name is looked up in
    :data:`MOVES` once, here."""
    if isinstance(move, Move):
        if move.hamiltonian is not hamiltonian:
            raise ValueError("the move was built for another Hamiltonian than the one to sample")
        move.check(hamiltonian, n_ones)
        return move
    if move not in MOVES:
        raise ValueError(f"move must be one of {tuple(MOVES)}, got {move!r}")
    MOVES[move].check(hamiltonian, n_ones)
    return MOVES[move](hamiltonian)


def run_chains(hamiltonian: Hamiltonian, beta: float | Sequence[float], n_chains: int, n_sweeps: int,
               move: Move | str = "flip", n_ones: int | None = None, burn_in: int = 0, thin: int = 1,
               seed: int = 0, observables: Mapping[str, Observable] | None = None,
               exchange: bool = False, progress: bool = True, start: Tensor | None = None) -> ChainResult:
    """Run ``n_chains`` independent chains, from random starts, at each inverse temperature in ``beta``.

    Args:
        hamiltonian: any Hamiltonian (SemiGrand for semi-grand CE runs).
        beta: one inverse temperature or a ladder; chains of entry k are rows k*n_chains ...
        move: a :class:`~lattherm.mcmc.moves.Move` built on ``hamiltonian``, or its name in
            :data:`MOVES`: "flip", "swap" (needs ``n_ones``) or "wolff" (ferromagnetic Ising, h = 0).
        burn_in: sweeps run before recording; thin: record every ``thin``-th sweep after that.
        observables: name -> function (B, N) -> (B,); defaults to :func:`standard_observables`.
        exchange: replica exchange between neighbouring rungs (ladder entries k, k+1, chain by
            chain) after every sweep, accepted by the move's ``exchange_log_ratio``: parallel
            tempering (the ladder should be sorted), or for VCSGC between neighbouring phis.
        start: the configurations to start from instead of random ones, (N,) for every chain or
            (B, N) one per chain (e.g. a perfect ordered phase, to heat it); canonical chains must
            hold ``n_ones`` ones.
    """
    betas = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    _check_run(betas, n_chains, n_sweeps, burn_in, thin)
    move = _resolve_move(move, hamiltonian, n_ones)
    if exchange and len(betas) < 2:
        raise ValueError("replica exchange needs at least two rungs")
    device = hamiltonian.device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    rows = len(betas) * n_chains
    x = initial_configurations(hamiltonian.n_sites, rows, n_ones, gen, device) if start is None else \
        _start_rows(start, rows, hamiltonian.n_sites, n_ones, device)
    ladder = torch.as_tensor(betas, device=device)
    beta_rows = torch.as_tensor(np.repeat(betas, n_chains), device=device)
    observables = dict(standard_observables() if observables is None else observables)

    records: dict[str, list[np.ndarray]] = {"energy": [], **{name: [] for name in observables}}
    accepted = torch.zeros(rows, dtype=torch.float64, device=device)
    ex_ok = torch.zeros(max(len(betas) - 1, 0), dtype=torch.float64, device=device)
    ex_tried = torch.zeros_like(ex_ok)
    walkers = RoundTrips(len(betas), n_chains, device) if exchange else None
    start = time.perf_counter()
    desc = f"mcmc {type(move).__name__}"
    for sweep in tqdm(range(n_sweeps), desc=desc, disable=not (progress and sys.stderr.isatty())):
        with torch.no_grad():
            accepted += move.sweep(x, beta_rows, gen)
            if exchange:
                log_ratio = move.exchange_log_ratio(x, hamiltonian.energy(x), ladder, n_chains)
                ok, tried = _exchange(x, log_ratio, sweep % 2, gen)
                ex_ok += ok.double().sum(dim=1)
                ex_tried += tried.double() * n_chains
                walkers.exchange(ok)
            if sweep >= burn_in and (sweep - burn_in) % thin == 0:
                records["energy"].append(hamiltonian.energy(x).cpu().numpy())
                for name, fn in observables.items():
                    records[name].append(fn(x).double().cpu().numpy())
    seconds = time.perf_counter() - start
    return ChainResult(
        betas=beta_rows.cpu().numpy(),
        group=np.repeat(np.arange(len(betas)), n_chains),
        series={name: np.stack(values, axis=1) for name, values in records.items()},
        acceptance=move.acceptance(accepted, n_sweeps).cpu().numpy(),
        final=x,
        trials=rows * n_sweeps * move.trials_per_sweep,
        seconds=seconds,
        exchange_acceptance=(ex_ok / ex_tried.clamp_min(1)).cpu().numpy() if exchange else None,
        round_trips=int(walkers.trips.sum()) if exchange else None,
    )


def refine(move: Move, x: Tensor, beta: Tensor, n_sweeps: int, gen: torch.Generator) -> Tensor:
    """``n_sweeps`` sweeps of ``move`` started from the configurations ``x`` (B, N), row r at
    inverse temperature ``beta[r]``; returns the new configurations (``x`` is left as it was).
    Every sweep leaves the Boltzmann distribution invariant, so exact samples stay exact and
    others move towards it: the MC refinement of a neural sampler's output."""
    x = x.clone()
    with torch.no_grad():
        for _ in range(n_sweeps):
            move.sweep(x, beta, gen)
    return x


def parallel_tempering(hamiltonian: Hamiltonian, betas: Sequence[float], n_chains: int, n_sweeps: int,
                       **kwargs) -> ChainResult:
    """Replica exchange over a sorted beta ladder (flip moves between exchanges by default);
    ``result.exchange_acceptance`` holds the acceptance of each neighbouring pair."""
    betas = np.asarray(betas, dtype=np.float64)
    if np.any(np.diff(betas) <= 0):
        raise ValueError(f"the beta ladder must be strictly increasing, got {betas}")
    return run_chains(hamiltonian, betas, n_chains, n_sweeps, exchange=True, **kwargs)


# -- tables -------------------------------------------------------------------------------------
def summarize_chains(result: ChainResult, n_sites: int, temperatures: Sequence[float] | None = None) -> pd.DataFrame:
    """One tidy row per beta: energy, heat capacity and observables with error bars.

    For each beta the equilibration prefix is detected on the energy series (pymbar rule) and
    dropped from every series. Errors: blocking for means, jackknife over chains (or chain
    blocks) for the heat capacity C = beta^2 var(E); tau_int and n_eff refer to the energy.
    """
    rows = []
    betas = result.betas[np.unique(result.group, return_index=True)[1]]
    for k, beta in enumerate(betas):
        mask = result.group == k
        energy = summarize(result.series["energy"][mask])
        t0 = energy.n_discarded
        c, c_err = jackknife(lambda s: heat_capacity(s, beta), result.series["energy"][mask][:, t0:])
        row = {
            "beta": float(beta),
            "temperature": float(temperatures[k]) if temperatures is not None else (math.inf if beta == 0 else 1.0 / beta),
            "n_chains": int(mask.sum()),
            "n_samples": int(result.series["energy"].shape[1] - t0),
            "n_discarded": t0,
            "energy": energy.mean,
            "energy_err": energy.error,
            "heat_capacity": c,
            "heat_capacity_err": c_err,
            "tau_int": energy.tau_int,
            "n_eff": energy.n_eff,
            "acceptance": float(result.acceptance[mask].mean()),
            "energy_per_site": energy.mean / n_sites,
            "energy_per_site_err": energy.error / n_sites,
            "heat_capacity_per_site": c / n_sites,
            "heat_capacity_per_site_err": c_err / n_sites,
        }
        for name, series in result.series.items():
            if name == "energy":
                continue
            kept = series[mask][:, t0:]
            if np.all(np.isfinite(kept)):
                s = summarize(kept, discard=0)
                row[name], row[f"{name}_err"] = s.mean, s.error
            else:  # e.g. Warren-Cowley with a species absent (undefined): NaN, as the mchammer tables
                row[name], row[f"{name}_err"] = math.nan, math.nan
        if result.exchange_acceptance is not None:
            row["exchange_acceptance_up"] = (float(result.exchange_acceptance[k])
                                             if k < len(result.exchange_acceptance) else math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def scan(hamiltonian: Hamiltonian, betas: Sequence[float], n_chains: int, n_sweeps: int,
         temperatures: Sequence[float] | None = None, **kwargs) -> pd.DataFrame:
    """Temperature scan: :func:`run_chains` over all betas in one batch, then
    :func:`summarize_chains`. ``temperatures`` label the rows (e.g. kelvin for a CE)."""
    return scan_with_samples(hamiltonian, betas, n_chains, n_sweeps, temperatures, **kwargs)[0]


def scan_with_samples(hamiltonian: Hamiltonian, betas: Sequence[float], n_chains: int, n_sweeps: int,
                      temperatures: Sequence[float] | None = None, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`scan`, and its recorded energies after equilibration (for MBAR): a long table
    with one row per chain and record: beta, chain, record, energy."""
    if temperatures is not None and len(temperatures) != len(betas):
        raise ValueError(f"got {len(temperatures)} temperatures for {len(betas)} betas")
    n_records = -(-(n_sweeps - kwargs.get("burn_in", 0)) // kwargs.get("thin", 1))
    if n_records < 128:
        # up to half is discarded as equilibration, and blocking needs 64 samples per chain
        raise ValueError(f"a scan needs at least 128 recorded sweeps per chain, got {n_records}")
    result = run_chains(hamiltonian, betas, n_chains, n_sweeps, **kwargs)
    table = summarize_chains(result, hamiltonian.n_sites, temperatures)
    return table, energy_samples(result, table)


def energy_samples(result: ChainResult, table: pd.DataFrame) -> pd.DataFrame:
    """The recorded energies of ``result`` after the equilibration prefix that its
    :func:`summarize_chains` ``table`` dropped, for MBAR: one row per chain and record (beta,
    chain, record, energy)."""
    samples = []
    for k, (beta, t0) in enumerate(zip(table.beta, table.n_discarded)):
        energies = result.series["energy"][result.group == k][:, t0:]
        chain, record = np.indices(energies.shape)
        samples.append(pd.DataFrame({"beta": beta, "chain": chain.ravel(), "record": record.ravel() + t0,
                                     "energy": energies.ravel()}))
    return pd.concat(samples, ignore_index=True)


def reference_scan(system, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The MCMC reference of a :class:`lattherm.systems.System` as its config's ``mcmc`` block
    asks: a scan from T = inf (beta = 0, where ln Z is known) down through ``mcmc.temperatures``,
    with the standard observables; one tidy row per temperature, and the recorded energies
    (:func:`scan_with_samples`) from which :mod:`lattherm.mcmc.mbar` gets the free energies.
    A spin glass's scan is parallel tempering over that ladder (hot to cold, from beta = 0):
    single-spin chains of a glass stay in one valley below its freezing temperature, so the
    free energies of independent chains would be those of a valley. With ``mcmc.rungs`` its
    ladder is tuned (:func:`tempering_ladder`): rows at every rung, ``on_grid`` marking the
    configured temperatures (the free-energy table keeps those)."""
    from lattherm.lattices import size_tag

    config = system.config
    if config.mcmc is None:
        raise LatthermError(f"system {system.name!r} has no mcmc block (mcmc.temperatures, chains, sweeps, burn_in)")
    try:
        MOVES[config.move].check(system.hamiltonian, system.n_ones)
    except ValueError as exc:
        raise LatthermError(f"system {system.name!r}: mcmc.move {config.move!r} cannot sample it: {exc}") from None
    tempering = config.spin_glass
    if tempering:
        betas = tempering_ladder(system, seed, from_infinity=True)
        temperatures, grid = ladder_temperatures(system, betas)
    else:
        temperatures = [math.inf, *config.mcmc.temperatures]
        betas = [0.0 if math.isinf(t) else system.beta(t) for t in temperatures]
    table, samples = scan_with_samples(system.hamiltonian, betas, config.mcmc.chains, config.mcmc.sweeps,
                                       move=config.move, n_ones=system.n_ones, burn_in=config.mcmc.burn_in, seed=seed,
                                       observables=standard_observables(system.lattice), temperatures=temperatures,
                                       exchange=tempering)
    if tempering:
        table["on_grid"] = grid
    columns = {"system": system.name, "method": "mcmc", "size": size_tag(system.size), "ensemble": system.ensemble,
               "move": config.move}
    for i, (name, value) in enumerate(columns.items()):
        table.insert(i, name, value)
    table["n_sites"] = system.n_sites
    if system.n_ones is not None:
        table["n_ones"] = system.n_ones
    return table, samples


# -- parallel tempering of spin glasses --------------------------------------------------------
LADDER_PILOT_ROUNDS = 2


def ladder_pilot_sweeps(sweeps: int) -> int:
    """Sweeps of each pilot round that tunes a ladder for a run of ``sweeps``."""
    return max(256, sweeps // 8)


def tempering_ladder(system, seed: int = 0, from_infinity: bool = False) -> np.ndarray:
    """The increasing beta ladder of a spin glass's parallel tempering: its ``mcmc.temperatures``
    (and beta = 0 first if ``from_infinity``), with ``mcmc.rungs`` set the
    :func:`lattherm.mcmc.ladder.tuned_ladder` of that many temperatures around them (pilot runs
    of the same chains: :data:`LADDER_PILOT_ROUNDS` rounds of :func:`ladder_pilot_sweeps`)."""
    from lattherm.mcmc.ladder import tuned_ladder

    mcmc = system.config.mcmc
    grid = np.sort([system.beta(t) for t in mcmc.temperatures] + ([0.0] if from_infinity else []))
    if mcmc.rungs is None:
        return grid
    return tuned_ladder(system.hamiltonian, grid, mcmc.rungs + from_infinity, mcmc.chains,
                        ladder_pilot_sweeps(mcmc.sweeps), rounds=LADDER_PILOT_ROUNDS, seed=seed,
                        move=system.config.move, n_ones=system.n_ones)


def ladder_temperatures(system, betas) -> tuple[list[float], np.ndarray]:
    """The temperature of each of ``betas`` (exactly as configured for those of the system's
    ``mcmc.temperatures``, inf for beta = 0) and which are on that grid rather than rungs the
    ladder tuning added."""
    grid = {0.0: math.inf, **{system.beta(t): t for t in system.config.mcmc.temperatures}}
    matches = [next((t for g, t in grid.items() if math.isclose(b, g, rel_tol=1e-12, abs_tol=0)), None) for b in betas]
    temperatures = [system.temperature(b) if t is None else t for b, t in zip(betas, matches)]
    return temperatures, np.array([t is not None for t in matches])


class BoltzmannStream:
    """Parallel tempering of a :class:`lattherm.systems.System` that goes on between draws: over
    the rungs of its MCMC ladder (a spin glass's :func:`tempering_ladder`, else its
    ``mcmc.temperatures``) hotter than the coldest of ``temperatures`` plus ``temperatures``
    themselves (one temperature, or the two ends of a range), with its ``mcmc`` chains and move,
    exchanges after every sweep (always: near a first-order transition or in a glass, independent
    chains stay where they started). The target rungs are those from the hottest to the coldest
    of ``temperatures``. It starts with ``mcmc.burn_in`` sweeps from random configurations, or
    from ``state`` (every rung's configurations, as :attr:`state` held them: an exact resume).
    Each :meth:`draw` runs ``sweeps`` more and returns the target rungs' configurations: successive
    draws are new Boltzmann samples, correlated only through the chains; draw k is seeded by
    (seed, k)."""

    def __init__(self, system, temperatures: Sequence[float], sweeps: int, seed: int = 0,
                 state: Tensor | None = None, device: torch.device | str | None = None):
        mcmc = system.config.mcmc
        if mcmc is None:
            raise LatthermError(f"system {system.name!r} has no mcmc block, which Boltzmann samples need "
                                "(mcmc.temperatures, chains, sweeps, burn_in)")
        if not (isinstance(sweeps, int) and sweeps >= 1):
            raise LatthermError(f"Boltzmann stream: sweeps = {sweeps!r} must be a positive integer")
        ends = sorted({system.beta(t) for t in temperatures})
        ladder = tempering_ladder(system, seed) if system.config.spin_glass else \
            np.sort([system.beta(t) for t in mcmc.temperatures])
        rungs = [b for b in ladder if b < ends[-1] and not any(math.isclose(b, e, rel_tol=1e-12) for e in ends)]
        self.betas = np.sort([*rungs, *ends])
        self.targets = int(np.sum(self.betas >= ends[0]))  # the coldest rungs, from the hottest end on
        self.hamiltonian = system.hamiltonian if device is None else system.hamiltonian.to(device)
        self.chains, self.sweeps, self.seed = mcmc.chains, sweeps, seed
        self.move, self.n_ones = system.config.move, system.n_ones
        if state is None:
            self.state = self._advance(None, max(mcmc.burn_in, 1), seed)
        elif state.shape != (len(self.betas) * self.chains, system.n_sites):
            raise LatthermError(f"Boltzmann stream state of shape {tuple(state.shape)}: this ladder holds "
                                f"{len(self.betas)} rungs x {self.chains} chains of {system.n_sites} sites")
        else:
            self.state = state.to(device=self.hamiltonian.device, dtype=torch.long)

    @property
    def target_betas(self) -> np.ndarray:
        """The target rungs' inverse temperatures, from the hottest: a draw's rows hold ``chains``
        configurations of each in turn."""
        return self.betas[-self.targets:]

    def _advance(self, start: Tensor | None, sweeps: int, seed: int) -> Tensor:
        """Every rung's configurations after ``sweeps`` more sweeps (energies recorded at the last
        only: the stream needs none)."""
        return run_chains(self.hamiltonian, self.betas, self.chains, sweeps, move=self.move, n_ones=self.n_ones,
                          burn_in=sweeps - 1, seed=seed, observables={}, exchange=len(self.betas) > 1,
                          progress=False, start=start).final

    def draw(self, index: int) -> Tensor:
        """The target rungs' configurations after ``sweeps`` more sweeps, (targets x chains, N),
        rung by rung as in :attr:`target_betas`."""
        self.state = self._advance(self.state, self.sweeps, self.seed * 1_000_003 + 1 + index)
        return self.state[-self.targets * self.chains:].clone()


# -- overlaps of replica pairs (spin glasses) ---------------------------------------------------
def _partners(x: Tensor) -> Tensor:
    """Each row's partner row: rows 2r and 2r+1 pair up."""
    return x[torch.arange(x.shape[0], device=x.device) ^ 1]


def partner_overlap(x: Tensor) -> Tensor:
    """The overlap of each row with its partner row (rows 2r and 2r+1 pair up): with an even
    number of chains per temperature, two independent replicas at the same temperature."""
    return overlap(x, _partners(x))


def partner_link_overlap(bonds: Tensor | None) -> Observable:
    """The observable: link overlap (:func:`lattherm.observables.link_overlap` over ``bonds``)
    of each row with its partner row, paired as in :func:`partner_overlap`."""
    return lambda x: link_overlap(x, _partners(x), bonds)


LINK_IDENTITY_COLUMNS = ("energy_per_bond", "energy_per_bond_err", "link_overlap", "link_overlap_err",
                         "link_energy_per_bond", "link_energy_per_bond_err", "coupling_variance", "n_bonds")


def link_identity_terms(energy: np.ndarray, link: np.ndarray, beta: float, disorder: GaussianBonds | None) -> dict:
    """Both sides of the energy / link-overlap identity of a Gaussian glass for one sample at one
    temperature (Katzgraber, Palassini & Young, PRB 63, 184422 (2001)): for i.i.d. couplings
    J_b ~ N(0, sigma^2) on N_b bonds, Gaussian integration by parts gives, averaged over the
    disorder, [<E>] / N_b = -beta sigma^2 (1 - [<q_l>]). Per sample it is not exact; out of
    equilibrium (from random starts) the energy lies above and the link overlap below, so the two
    meet only once equilibrated.

    ``energy``: recorded total energies (chains, records); ``link``: the link overlaps of the
    replica pairs (pairs, records). Returns ``energy_per_bond`` = <E> / N_b, ``link_overlap``
    <q_l> and ``link_energy_per_bond`` = -beta sigma^2 (1 - <q_l>), each with its blocking error,
    and sigma^2, N_b. Without Gaussian couplings (``disorder`` None: +-J couplings, where J^2 is
    the same on every bond and the derivation fails, or a field) every column is NaN."""
    if disorder is None:
        return dict.fromkeys(LINK_IDENTITY_COLUMNS, math.nan)
    e = summarize(energy / disorder.n_bonds, discard=0)
    ql = summarize(link, discard=0)
    scale = beta * disorder.variance
    return {"energy_per_bond": e.mean, "energy_per_bond_err": e.error, "link_overlap": ql.mean,
            "link_overlap_err": ql.error, "link_energy_per_bond": -scale * (1.0 - ql.mean),
            "link_energy_per_bond_err": scale * ql.error, "coupling_variance": disorder.variance,
            "n_bonds": disorder.n_bonds}


def overlap_tempering(system, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parallel tempering of a :class:`lattherm.systems.System` over its ``mcmc.temperatures``
    (with ``mcmc.rungs`` the tuned ladder around them, :func:`tempering_ladder`; its mcmc move,
    exchanges between neighbours after every sweep), its chains paired into independent
    replicas. Returns the P(q) table at the configured temperatures (long: temperature, beta, q,
    probability with its standard error, n_eff) and one summary row per rung (``on_grid``
    marking the configured ones): chi_SG = N <q^2> with its
    blocking error, the exchange acceptance to the next colder temperature, the equilibration
    check (chi_SG of the first and second half of the recorded sweeps, and their distance in
    sigmas), the ladder's round trips with the mean sweeps per round trip of one walker (NaN
    without any), and the ingredients of the energy / link-overlap identity of a Gaussian glass
    (:func:`link_identity_terms`; NaN for other couplings)."""
    from lattherm.lattices import size_tag

    config = system.config
    if config.mcmc is None or config.mcmc.chains % 2:
        raise LatthermError(f"system {system.name!r}: replica overlaps pair up chains, so mcmc.chains must be even "
                            f"(got {None if config.mcmc is None else config.mcmc.chains})")
    betas = tempering_ladder(system, seed)
    temperatures, grid = ladder_temperatures(system, betas)
    disorder = gaussian_bonds(system.hamiltonian)
    observables = {"overlap": partner_overlap}
    if disorder is not None:
        observables["link_overlap"] = partner_link_overlap(disorder.bonds)
    result = parallel_tempering(system.hamiltonian, betas, config.mcmc.chains, config.mcmc.sweeps,
                                move=config.move, n_ones=system.n_ones, burn_in=config.mcmc.burn_in, seed=seed,
                                observables=observables)
    n = system.n_sites
    labels = {"system": system.name, "method": "parallel_tempering", "size": size_tag(system.size)}
    walkers = len(betas) * config.mcmc.chains
    round_trip_sweeps = walkers * config.mcmc.sweeps / result.round_trips if result.round_trips else math.nan
    histograms, summary = [], []
    for k, (temperature, beta) in enumerate(zip(temperatures, betas)):
        rows = result.group == k
        q = result.series["overlap"][rows][0::2]  # (pairs, records): one row per pair
        n_eff = effective_pair_count(q)
        distribution = overlap_histogram(q, n)
        if grid[k]:  # P(q) where results are wanted; the tuned rungs only help the walkers along
            histograms.append(pd.DataFrame({**labels, "temperature": temperature, "beta": beta, "q": overlap_values(n),
                                            "probability": distribution,
                                            "probability_err": histogram_errors(distribution, n_eff), "n_eff": n_eff}))
        halves = [summarize(n * part**2, discard=0) for part in np.array_split(q, 2, axis=1)]
        whole = summarize(n * q**2, discard=0)
        distance = abs(halves[0].mean - halves[1].mean) / max(math.hypot(halves[0].error, halves[1].error), 1e-300)
        link = result.series["link_overlap"][rows][0::2] if disorder is not None else None
        summary.append({**labels, "temperature": temperature, "beta": beta, "on_grid": bool(grid[k]), "n_pairs": q.shape[0],
                        "n_records": q.shape[1], "n_eff": n_eff, "chi_sg": susceptibility(distribution, n),
                        "chi_sg_err": whole.error, "chi_sg_first_half": halves[0].mean,
                        "chi_sg_second_half": halves[1].mean, "halves_sigma": distance,
                        "exchange_acceptance_colder": (float(result.exchange_acceptance[k])
                                                       if k < len(betas) - 1 else math.nan),
                        "round_trips": result.round_trips, "round_trip_sweeps": round_trip_sweeps,
                        **link_identity_terms(result.series["energy"][rows], link, beta, disorder)})
    return pd.concat(histograms, ignore_index=True), pd.DataFrame(summary)
