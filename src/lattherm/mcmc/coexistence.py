"""First-order order-disorder transitions of an alloy by free-energy crossing.

Near a strongly first-order transition a finite cell switches phase only rarely, so heating
and cooling scans leave a hysteresis bracket, not a temperature. The transition temperature is
where the two phases' free energies are equal. Each phase is followed on its own branch of
canonical MCMC (batched parallel swaps, many chains per temperature):

* the disordered branch (A1) from random starts, from T = inf, where ln Z = ln C(N, n) + ln f0
  (f0 the fraction of uniform configurations that count as disordered), down into the
  supercooled range;
* the ordered branch from the perfect phase, from a low anchor temperature T0, where
  ln Z(T0) = ln g - beta0 E0 - ln p0 exactly (g the number of ordered variants on the cell, E0
  their energy, p0 the fraction of samples still in a perfect variant: the identity
  p0 = g exp(-beta0 E0) / Z), up into the superheated range.

A phase is a region of configuration space (the generic FCC order parameter above or below
0.5), and its free energy that of the Boltzmann distribution restricted to it: the two
regions partition the space, so Z = Z_ordered + Z_A1 exactly (tested by enumeration). A chain
contributes the records it spends in its phase; below T_c the disordered phase is metastable,
above it the ordered one, and near T_c in a large cell a chain leaves only rarely. MBAR (:func:`lattherm.mcmc.mbar.mbar_log_z`) gives ln Z with its error along each
branch. Between its temperatures a branch's beta F is interpolated with a cubic Hermite spline
(its slope d(beta F)/d beta = <E> is measured), and beyond its last temperature extrapolated by
the second-order expansion beta F + <E> d beta - var(E) d beta^2 / 2 (all measured); the
difference from the first-order one is reported as the extrapolation's systematic error. The
crossing beta_c has the statistical error sigma(Delta beta F) / |Delta E|, Delta E the latent
heat, since d(Delta beta F) / d beta = Delta E.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.interpolate import CubicHermiteSpline
from scipy.optimize import brentq

from lattherm import K_B_EV
from lattherm.errors import LatthermError
from lattherm.mcmc.analysis import integrated_autocorr_time, summarize
from lattherm.mcmc.integration import reference_log_z
from lattherm.mcmc.mbar import mbar_log_z
from lattherm.mcmc.moves import Swap
from lattherm.mcmc.samplers import run_chains
from lattherm.observables import standard_observables
from lattherm.phases import DISORDERED, ORDER_THRESHOLD, ORDERED, ordered_configuration

# distinct ordered variants on a cell whose four sublattices are periodic: which sublattice(s)
# the minority species occupies (L1_2: 1 of 4; L1_0: 2 of 4)
VARIANTS = {"L1_2 A3B": 4, "L1_0 AB": 6, "L1_2 AB3": 4}
ORDER_COLUMNS = ("order_parameter", "order_l12", "order_l10")
MIN_KEPT = 0.25  # a temperature belongs to a branch while at least this fraction of its records are in phase


def transition(hamiltonian, lattice, n_ones: int, phase: str, temperatures, window, settings: "BranchSettings",
               seed: int = 0, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The ordered and the disordered branch of ``phase`` at composition ``n_ones`` and their
    :func:`crossing`. ``window`` (K) is where the transition is sought: both branches run there;
    below it the ordered branch also runs at ``temperatures`` (its anchor the coldest), above
    it the disordered branch (from T = inf). Seeds: ``seed`` and ``seed + 1000``."""
    window = sorted(float(t) for t in window)
    if not window:
        raise LatthermError("the transition window (transition_temperatures) is empty")
    low = [t for t in temperatures if t < window[0]]
    high = [t for t in temperatures if window[-1] < t < math.inf]
    if not low:
        raise LatthermError(f"no temperature below the transition window {window[0]} K to anchor the ordered branch")
    ordered = run_branch(hamiltonian, lattice, n_ones, phase, low + window, settings, seed, progress)
    disordered = run_branch(hamiltonian, lattice, n_ones, DISORDERED, high + window, settings, seed + 1000, progress)
    return ordered, disordered, crossing(ordered, disordered)


@dataclass(frozen=True)
class BranchSettings:
    """MCMC of one branch: chains per temperature, sweeps per chain (the first ``burn_in`` not
    recorded; a detected equilibration prefix is dropped as well)."""

    chains: int = 64
    sweeps: int = 400
    burn_in: int = 100


def run_branch(hamiltonian, lattice, n_ones: int, phase: str, temperatures, settings: BranchSettings,
               seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """One branch at fixed composition ``n_ones``: ``phase`` "A1" (random starts, from T = inf
    down) or an ordered prototype of :data:`lattherm.phases.ORDERED` (perfect starts, anchored
    at the lowest of ``temperatures``, in kelvin, upwards).

    The branch's phase is a region of configuration space: the generic FCC order parameter
    >= :data:`ORDER_THRESHOLD` (ordered) or below it (A1); its free energy is that of the
    Boltzmann distribution restricted to the region, from the recorded sweeps that lie in it
    (a chain that has left its phase contributes until it leaves). The A1 anchor at T = inf is
    ln C(N, n) + ln f0, f0 the fraction of uniform configurations in the region (measured).
    One tidy row per temperature: the fraction of records in phase, energy per site and its
    variance in phase, the order parameters over all records (what a plain scan shows), ln Z
    and the free energy per site with MBAR errors. ``in_branch`` is false from the first
    temperature (away from the anchor) where fewer than :data:`MIN_KEPT` of the records are in
    phase; free energies are NaN there."""
    n = lattice.n_sites
    if phase == DISORDERED:
        start = None
        temperatures = [math.inf, *sorted((float(t) for t in temperatures), reverse=True)]
    elif phase in ORDERED:
        start = torch.as_tensor(ordered_configuration(lattice, phase), device=hamiltonian.device).long()
        if int(start.sum()) != n_ones:
            raise LatthermError(f"{phase} on {n} sites holds {int(start.sum())} minority atoms, not n_ones = {n_ones}")
        temperatures = sorted(float(t) for t in temperatures)
    else:
        raise LatthermError(f"unknown phase {phase!r}; one of {[DISORDERED, *ORDERED]}")
    betas = np.array([0.0 if math.isinf(t) else 1.0 / (K_B_EV * t) for t in temperatures])
    observables = {k: v for k, v in standard_observables(lattice).items() if k in ORDER_COLUMNS}
    result = run_chains(hamiltonian, betas, settings.chains, settings.sweeps, move=Swap(hamiltonian, parallel=True),
                        n_ones=n_ones, burn_in=settings.burn_in, seed=seed, observables=observables,
                        progress=progress, start=start)
    rows, samples, log_z0, log_z0_err = [], [], math.nan, math.nan
    for k, (temperature, beta) in enumerate(zip(temperatures, betas)):
        rows_k = result.group == k
        energy, order = result.series["energy"][rows_k], result.series["order_parameter"][rows_k]
        t0 = summarize(energy).n_discarded
        stride = max(1, math.ceil(2 * integrated_autocorr_time(energy[:, t0:])))
        energy, order = energy[:, t0::stride], order[:, t0::stride]  # nearly independent records
        in_phase = order >= ORDER_THRESHOLD if start is not None else order < ORDER_THRESHOLD
        kept = energy[in_phase]
        row = {"phase": phase, "temperature": temperature, "beta": beta, "n_sites": n, "n_ones": n_ones,
               "chains": settings.chains, "records": int(energy.size), "in_phase": float(in_phase.mean()),
               **{name: float(result.series[name][rows_k][:, t0:].mean()) for name in ("order_l12", "order_l10")}}
        if in_phase.mean() >= MIN_KEPT and kept.size >= 2 and (not rows or rows[-1]["in_branch"]):
            samples.append(kept)
            row.update(in_branch=True, energy=float(kept.mean()), energy_err=float(kept.std(ddof=1) / math.sqrt(kept.size)),
                       energy_var=float(kept.var(ddof=1)))
            if k == 0 and start is None:
                fraction = float(in_phase.mean())
                log_z0 = reference_log_z(n, n_ones) + math.log(fraction)
            elif k == 0:
                e0 = float(hamiltonian.energy(start[None]))
                fraction = float(np.mean(np.abs(kept - e0) < 1e-9 * max(1.0, abs(e0))))
                if fraction < 0.5:
                    raise LatthermError(f"{phase}: only {fraction:.2f} of the samples at the anchor T = {temperature} K "
                                        "are perfect; anchor the ordered branch at a lower temperature")
                log_z0 = math.log(VARIANTS[phase]) - beta * e0 - math.log(fraction)
            if k == 0:  # binomial error of ln(fraction); none seen outside still bounds it by 1 / M
                log_z0_err = math.sqrt(max(1.0 - fraction, 1.0 / energy.size) / (fraction * energy.size))
        else:
            row.update(in_branch=False, energy=math.nan, energy_err=math.nan, energy_var=math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    inside = table.in_branch.to_numpy()
    if inside.sum() < 2:
        raise LatthermError(f"{phase} branch on {n} sites: fewer than two temperatures stayed in phase "
                            f"(fractions in phase {table.in_phase.round(2).tolist()} at {temperatures} K)")
    log_z, log_z_err = mbar_log_z(betas[inside], samples, log_z0)
    log_z_err = np.hypot(log_z_err, log_z0_err)  # the anchor's error shifts the whole branch
    table["log_z"], table["log_z_err"] = math.nan, math.nan
    table.loc[inside, "log_z"], table.loc[inside, "log_z_err"] = log_z, log_z_err
    with np.errstate(divide="ignore", invalid="ignore"):
        table["free_energy_per_site"] = -table.log_z / (table.beta * n)
        table["free_energy_per_site_err"] = table.log_z_err / (table.beta * n)
    table["energy_per_site"] = table.energy / n
    table["energy_per_site_err"] = table.energy_err / n
    return table


def _branch_function(table: pd.DataFrame, order: int):
    """beta F (total, dimensionless) of a branch as a function of beta: Hermite inside its
    range, the ``order``-th order expansion about its end point outside; and its error
    (nearest state's)."""
    t = table[table.in_branch].sort_values("beta")
    b, bf, e, var, err = (t[c].to_numpy(np.float64) for c in ("beta", "log_z", "energy", "energy_var", "log_z_err"))
    bf = -bf
    spline = CubicHermiteSpline(b, bf, e)

    def value(beta: float) -> float:
        if b[0] <= beta <= b[-1]:
            return float(spline(beta))
        k = 0 if beta < b[0] else -1
        d = beta - b[k]
        return float(bf[k] + e[k] * d - (0.5 * var[k] * d * d if order == 2 else 0.0))

    def error(beta: float) -> float:
        return float(err[np.argmin(np.abs(b - beta))])

    return value, error, (b[0], b[-1])


def crossing(ordered: pd.DataFrame, disordered: pd.DataFrame) -> dict:
    """The temperature where the ordered and disordered branches' free energies cross.

    Searched between the hottest ordered and the coldest disordered temperature in branch (their
    overlap, or the gap between them), widened by one mean spacing of each branch's last step,
    so that a branch is extrapolated by at most about one step. Returns t_c (K) with its
    statistical error t_c_err, t_c_extrapolation (first- vs second-order extrapolation; 0 when
    the root lies where both branches were sampled), extrapolated (bool), latent heat per site
    (eV) and Delta F's error per site at the root. NaN t_c (and a ``reason``) when the branches
    do not cross there."""
    n = int(ordered.n_sites.iloc[0])
    fo2, eo, (o_lo, o_hi) = _branch_function(ordered, 2)
    fd2, ed, (d_lo, d_hi) = _branch_function(disordered, 2)
    fo1, _, _ = _branch_function(ordered, 1)
    fd1, _, _ = _branch_function(disordered, 1)
    # ordered branch: beta >= o_lo (cold); disordered: beta <= d_hi (hot)
    step_o = np.diff(np.sort(ordered[ordered.in_branch].beta))[:1]
    step_d = np.diff(np.sort(disordered[disordered.in_branch].beta))[-1:]
    lo = min(o_lo, d_hi) - float(step_o[0] if len(step_o) else 0.0)
    hi = max(o_lo, d_hi) + float(step_d[0] if len(step_d) else 0.0)
    result = {"t_c": math.nan, "t_c_err": math.nan, "t_c_extrapolation": math.nan, "extrapolated": False,
              "latent_heat_per_site": math.nan, "delta_f_err_per_site": math.nan, "reason": "",
              "ordered_t_max": 1.0 / (K_B_EV * o_lo), "disordered_t_min": 1.0 / (K_B_EV * d_hi)}

    def root(fo, fd) -> float | None:
        g = lambda beta: fo(beta) - fd(beta)  # noqa: E731
        grid = np.linspace(lo, hi, 201)
        values = np.array([g(x) for x in grid])
        change = np.nonzero(np.sign(values[:-1]) != np.sign(values[1:]))[0]
        return None if len(change) == 0 else brentq(g, grid[change[0]], grid[change[0] + 1], xtol=1e-12)

    beta_c = root(fo2, fd2)
    if beta_c is None:
        result["reason"] = "the branches do not cross within one step of their ranges"
        return result
    beta_c1 = root(fo1, fd1)
    extrapolated = not (o_lo <= beta_c <= d_hi)
    energy_o = (fo2(beta_c + 1e-7) - fo2(beta_c - 1e-7)) / 2e-7
    energy_d = (fd2(beta_c + 1e-7) - fd2(beta_c - 1e-7)) / 2e-7
    latent = energy_d - energy_o
    sigma = math.hypot(eo(beta_c), ed(beta_c))
    t_c = 1.0 / (K_B_EV * beta_c)
    # dT = k_B T^2 d(beta), d(beta) = sigma(Delta beta F) / |Delta E|
    result.update(t_c=t_c, t_c_err=K_B_EV * t_c**2 * sigma / abs(latent),
                  t_c_extrapolation=(abs(1.0 / (K_B_EV * beta_c1) - t_c) if extrapolated and beta_c1 is not None
                                     else (math.inf if extrapolated else 0.0)),
                  extrapolated=extrapolated, latent_heat_per_site=latent / n,
                  delta_f_err_per_site=sigma / (beta_c * n))
    return result



def phase_sum(free: pd.DataFrame, branches: pd.DataFrame) -> pd.DataFrame:
    """A canonical scan's free-energy table (:func:`lattherm.mcmc.mbar.mbar_scan`) with ln Z
    replaced by the sum over the phases, ln(Z_ordered + Z_A1), at every temperature where the
    ordered branch of :func:`transition` at its composition is in branch (where the disordered
    one is not, its chains left their region or never ran: it adds a negligible Z). Elsewhere
    the ordered region holds little weight and the scan, which samples every configuration,
    stays.

    Below a strongly first-order T_c parallel tempering from T = inf does not carry the ordered
    phase's weight down (on 256 CuAu sites its F came out up to 2 meV/site too high, violating
    the exact bound F <= E0 - k_B T ln g / N); the ordered branch is anchored at the ground
    state exactly instead. The scan's own values stay as ``free_energy_per_site_scan`` (with its
    error) next to ``scan_minus_phases_sigma``, their difference in units of both errors: near
    zero above T_c, where the scan is trustworthy, it cross-checks the branches."""
    for column in ("phase", "temperature", "n_sites", "in_branch", "log_z", "log_z_err"):
        if column not in branches.columns:
            raise LatthermError(f"the branches table lacks column {column!r}; it has {list(branches.columns)}")
    if set(branches.n_sites) != set(free.n_sites):
        raise LatthermError(f"the branches are on {sorted(set(branches.n_sites))} sites, the scan on "
                            f"{sorted(set(free.n_sites))}")
    kept = branches[branches.in_branch.astype(bool) & np.isfinite(branches.log_z)]
    ordered = kept[kept.phase != DISORDERED].temperature
    sums = {}
    for temperature, group in kept[kept.temperature.isin(ordered)].groupby("temperature"):
        log_z = np.logaddexp.reduce(group.log_z.to_numpy(np.float64))
        weights = np.exp(group.log_z.to_numpy(np.float64) - log_z)  # Z_phase / Z: each error enters by its weight
        sums[float(temperature)] = (float(log_z), float(np.hypot.reduce(weights * group.log_z_err.to_numpy(np.float64))))
    result = free.copy()
    result["free_energy_per_site_scan"] = result.free_energy_per_site
    result["free_energy_per_site_scan_err"] = result.free_energy_per_site_err
    result["scan_minus_phases_sigma"] = math.nan
    for k, row in result.iterrows():
        match = next((v for t, v in sums.items() if math.isclose(t, row.temperature, rel_tol=1e-9)), None)
        if match is None or math.isinf(row.temperature):
            continue
        log_z, log_z_err = match
        n, beta = row.n_sites, row.beta
        f, f_err = -log_z / (beta * n), log_z_err / (beta * n)
        result.loc[k, ["log_z", "log_z_err", "free_energy", "free_energy_err", "free_energy_per_site",
                       "free_energy_per_site_err", "free_energy_estimator"]] = (
            log_z, log_z_err, f * n, f_err * n, f, f_err, "mbar phase sum")
        result.loc[k, "scan_minus_phases_sigma"] = (row.free_energy_per_site - f) / math.hypot(
            row.free_energy_per_site_err, f_err)
    return result
