"""Temperature scans of a cluster expansion with icet's mchammer (the external MCMC reference of
the batched torch samplers; the workflow's phase-diagram scans are :mod:`lattherm.mcmc.phase_scans`).

mchammer works in eV and kelvin (k_B in eV/K, :data:`lattherm.K_B_EV`) with atomic numbers as
occupations. Its ``ClusterExpansionCalculator`` updates energies incrementally; on cells so small
that clusters wrap onto periodic images of themselves (icet calls them self-interacting) these
increments can be wrong, so :func:`check_incremental_energies` compares a handful of random
changes against full recomputation (``ce.predict``) and every scan calls it first.

Conventions: x = 1 is ``species[1]`` (Au for CuAu). Semi-grand runs take ``dmu`` as in
:class:`lattherm.hamiltonians.SemiGrand` (E - dmu sum s), i.e. mchammer chemical potentials
{species[1]: 2 dmu, species[0]: 0} (the difference is all that matters). Variance-constrained
semi-grand (VCSGC) runs take ``phi`` and ``kappa`` as :class:`lattherm.mcmc.moves.VarianceConstrainedFlip`,
i.e. mchammer's ``phis={species[1]: phi}`` and ``kappa``.

Observables (composition, FCC sublattice order, Warren-Cowley short-range order, ...) are not
mchammer observers: mchammer records the configuration once per sweep, and the series come
from :mod:`lattherm.observables`, the functions and column names of the torch samplers' tables.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from ase import Atoms
from ase.data import atomic_numbers
from icet import ClusterExpansion
from mchammer.calculators import ClusterExpansionCalculator
from mchammer.ensembles import CanonicalEnsemble, SemiGrandCanonicalEnsemble, VCSGCEnsemble

from lattherm import K_B_EV
from lattherm.ce.storage import ce_species, check_lattice, parent_lattice, read_cluster_expansion
from lattherm.lattices import Lattice, make_lattice
from lattherm.mcmc.analysis import jackknife, summarize
from lattherm.mcmc.phase_scans import PhaseDiagramConfig, ScanSettingsError
from lattherm.observables import evaluate_observables, heat_capacity, standard_observables
from lattherm.phases import ORDERED, ordered_configuration, ordered_phase_at

ENSEMBLES = ("canonical", "semi_grand", "vcsgc")


DIRECTIONS = ("cooling", "heating")


class IncrementalEnergyError(RuntimeError):
    """mchammer's incremental energy changes disagree with full recomputation on this cell."""


def check_incremental_energies(ce: ClusterExpansion, structure: Atoms, n_trials: int = 20,
                               seed: int = 0, atol: float = 1e-8) -> float:
    """Largest |calculate_change - (predict(after) - predict(before))| * N over random flips
    and swaps of random configurations; raises :class:`IncrementalEnergyError` above ``atol`` eV.
    """
    rng = np.random.default_rng(seed)
    calc = ClusterExpansionCalculator(structure.copy(), ce)
    numbers = sorted({atomic_numbers[s] for sub in ce.get_cluster_space_copy().chemical_symbols for s in sub})
    n = len(structure)
    worst = 0.0
    for trial in range(n_trials):
        occ = rng.choice(numbers, size=n)
        sites = [int(s) for s in rng.choice(n, size=1 + trial % 2, replace=False)]  # flips and swaps
        new = [int(occ[sites[1]]), int(occ[sites[0]])] if len(sites) == 2 else [int(rng.choice(numbers))]
        calc.set_occupations([int(z) for z in occ])  # outside an ensemble the calculator holds no state
        change = calc.calculate_change(sites=sites, current_occupations=list(occ), new_site_occupations=new)
        after = occ.copy()
        after[sites] = new
        before_atoms, after_atoms = structure.copy(), structure.copy()
        before_atoms.set_atomic_numbers(occ)
        after_atoms.set_atomic_numbers(after)
        exact = n * (ce.predict(after_atoms) - ce.predict(before_atoms))
        worst = max(worst, abs(change - exact))
    if worst > atol:
        raise IncrementalEnergyError(
            f"mchammer's incremental energy changes are wrong by up to {worst:.3g} eV on the cell "
            f"{structure.cell.cellpar().round(4).tolist()} ({n} sites), which icet treats as "
            "self-interacting for this cluster space; use a larger supercell")
    return worst


def trajectory_observables(lattice: Lattice, occupations: np.ndarray, number_one: int,
                          sro_shells: int | None = None) -> dict[str, np.ndarray]:
    """The series of :func:`lattherm.observables.standard_observables` (the torch tables' columns)
    along an mchammer trajectory: ``occupations`` (T, N) atomic numbers, species 1 =
    ``number_one``. One batched call of the same functions the torch samplers use."""
    x = torch.as_tensor(np.asarray(occupations) == number_one, dtype=torch.int64)
    return evaluate_observables(standard_observables(lattice, sro_shells=sro_shells), x)


def _trajectory(mc, data: pd.DataFrame) -> np.ndarray:
    """Occupations (atomic numbers) recorded with each row of ``data``, shape (len(data), N)."""
    trials, structures = mc.data_container.get("mctrial", "trajectory")
    by_trial = {int(t): a.numbers for t, a in zip(trials, structures)}
    missing = [int(t) for t in data["mctrial"] if int(t) not in by_trial]
    if missing:
        raise RuntimeError(f"mchammer recorded no configuration at trial steps {missing[:5]}")
    return np.stack([by_trial[int(t)] for t in data["mctrial"]])


@dataclass
class RecordedScan:
    """A scan's tidy table (one row per temperature), its recorded energies after equilibration
    (beta, chain, record, energy: for MBAR) and the last configuration at each temperature
    (0/1 occupations, (T, N))."""

    table: pd.DataFrame
    samples: pd.DataFrame
    final: np.ndarray


def phase_diagram_scan(config: PhaseDiagramConfig, ce_file, ensemble: str, point: float, steps_per_site: int = 200,
                       seed: int = 0, direction: str = "cooling") -> RecordedScan:
    """The mchammer scan of the CE in ``ce_file`` on the cell and temperatures of a phase-diagram
    block, at one concentration (canonical) or one dmu (semi_grand), ``steps_per_site`` trial
    steps per site and temperature: the external reference of :mod:`lattherm.mcmc.phase_scans`
    (the workflow's scans). Cooling runs down the temperatures from a random start (canonical: from
    T = inf, where ln Z is known); heating (canonical) runs up them from the perfect ordered
    phase of that concentration. The table names its point (``concentration`` or ``dmu``),
    direction and cell."""
    if direction not in DIRECTIONS:
        raise ScanSettingsError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    ce = read_cluster_expansion(ce_file)
    lattice = make_lattice(config.lattice, config.size, a=parent_lattice(ce)[1])
    check_lattice(ce, lattice, ce_file)
    canonical = ensemble == "canonical"
    start = None
    temperatures = sorted(config.temperatures, reverse=True)
    if direction == "heating":
        phase = ordered_phase_at(point) if canonical else None
        if phase is None:
            raise ScanSettingsError(f"a heating scan starts from an ordered phase: canonical at one of "
                                    f"{[x for x, _ in ORDERED.values()]}, not {ensemble} at {point}")
        start, temperatures = ordered_configuration(lattice, phase), temperatures[::-1]
    elif canonical:
        temperatures = [math.inf, *temperatures]
    result = run_scan_recorded(ce, lattice, temperatures, ensemble, concentration=point if canonical else None,
                               dmu=None if canonical else point, steps_per_site=steps_per_site,
                               species=ce_species(ce), seed=seed, start=start)
    table = result.table
    table["concentration" if canonical else "dmu"] = point
    table["direction"] = direction
    table["n_sites"] = lattice.n_sites
    if canonical:
        table["n_ones"] = int(round(point * lattice.n_sites))
    return result


def run_scan(ce: ClusterExpansion, lattice: Lattice, temperatures: Sequence[float], ensemble: str = "canonical",
             concentration: float | None = None, dmu: float | None = None, steps_per_site: int = 200,
             species: Sequence[str] = ("Cu", "Au"), sro_shells: int | None = None, seed: int = 0,
             phi: float | None = None, kappa: float | None = None) -> pd.DataFrame:
    """The table of :func:`run_scan_recorded` (random start)."""
    return run_scan_recorded(ce, lattice, temperatures, ensemble, concentration, dmu, steps_per_site, species,
                             sro_shells, seed, phi=phi, kappa=kappa).table


def run_scan_recorded(ce: ClusterExpansion, lattice: Lattice, temperatures: Sequence[float],
                      ensemble: str = "canonical", concentration: float | None = None, dmu: float | None = None,
                      steps_per_site: int = 200, species: Sequence[str] = ("Cu", "Au"),
                      sro_shells: int | None = None, seed: int = 0, start: np.ndarray | None = None,
                      phi: float | None = None, kappa: float | None = None) -> RecordedScan:
    """One mchammer run per temperature (K), each continuing from the last configuration, the
    first from ``start`` (0/1 occupations; default random): a scan in decreasing temperature
    from a random start cools, one in increasing temperature from an ordered start heats.

    Every site is observed once per sweep (interval N). Per temperature the equilibration
    prefix is detected on the energy; the tidy row holds mean total energy (eV) with blocking
    error, heat capacity C = (E - <E>)^2 / (k_B T^2) in eV/K with jackknife error, tau_int (in
    sweeps), acceptance, trial steps per second, and the observables of
    :func:`lattherm.observables.standard_observables` with blocking errors, under the torch
    tables' column names: magnetization, abs_magnetization, composition; on FCC c_sub0..3,
    order_parameter, order_l12, order_l10; Warren-Cowley ``sro_1`` .. ``sro_{sro_shells}``
    (default: the first shell on FCC and BCC). They are computed after each run from the
    configurations mchammer records once per sweep, with the torch samplers' functions.
    VCSGC rows (``phi`` and ``kappa``, no concentration or dmu; the energy is the CE's) also hold
    mchammer's own d(F/N)/dc series averaged, ``free_energy_derivative_per_site`` with its error.
    """
    if ensemble not in ENSEMBLES:
        raise ScanSettingsError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    if ensemble == "canonical" and (concentration is None or dmu is not None):
        raise ScanSettingsError(f"the canonical ensemble needs a concentration and no dmu, "
                                f"got concentration = {concentration}, dmu = {dmu}")
    if ensemble == "semi_grand" and (dmu is None or concentration is not None):
        raise ScanSettingsError(f"the semi-grand ensemble needs dmu and no concentration, "
                                f"got dmu = {dmu}, concentration = {concentration}")
    if (ensemble == "vcsgc") != (phi is not None) or (ensemble == "vcsgc") != (kappa is not None):
        raise ScanSettingsError(f"phi and kappa go with the vcsgc ensemble, and only with it; got ensemble "
                                f"{ensemble!r}, phi = {phi}, kappa = {kappa}")
    if ensemble == "vcsgc" and (concentration is not None or dmu is not None or not math.isfinite(phi)
                                or not (math.isfinite(kappa) and kappa > 0)):
        raise ScanSettingsError(f"the vcsgc ensemble needs a finite phi, kappa > 0 and no concentration or dmu, "
                                f"got phi = {phi}, kappa = {kappa}, concentration = {concentration}, dmu = {dmu}")
    temperatures = np.asarray(temperatures, dtype=np.float64)
    if temperatures.ndim != 1 or len(temperatures) == 0 or not np.all(temperatures > 0):
        raise ScanSettingsError(f"temperatures must be positive kelvin (inf allowed), got {temperatures}")
    if steps_per_site < 128:
        # one sample per sweep; up to half is discarded, and blocking needs 64 samples
        raise ScanSettingsError(f"steps_per_site must be at least 128 for error analysis, got {steps_per_site}")
    n = lattice.n_sites
    rng = np.random.default_rng(seed)
    structure = lattice.to_atoms(np.zeros(n, dtype=int), species)
    check_incremental_energies(ce, structure, seed=seed)

    if ensemble == "canonical":
        n_ones = int(round(concentration * n))
        if not 0 <= n_ones <= n or abs(n_ones / n - concentration) > 1e-9:
            raise ScanSettingsError(f"concentration {concentration} is not a multiple of 1/{n} in [0, 1]")
        x = np.zeros(n, dtype=int)
        x[rng.choice(n, n_ones, replace=False)] = 1
    else:
        x = rng.integers(0, 2, n)
    if start is not None:
        x = np.asarray(start, dtype=int)
        if x.shape != (n,) or (ensemble == "canonical" and x.sum() != n_ones):
            raise ScanSettingsError(f"the start configuration must be ({n},) 0/1 occupations"
                                    + (f" with {n_ones} ones" if ensemble == "canonical" else ""))
    structure = lattice.to_atoms(x, species)
    calc = ClusterExpansionCalculator(structure, ce)
    number_one = atomic_numbers[species[1]]
    standard_observables(lattice, sro_shells=sro_shells)  # fails now, not after a run, on a bad cell

    rows, samples, final = [], [], []
    for temperature in temperatures:
        if np.isinf(temperature):
            if ensemble == "vcsgc":
                raise ScanSettingsError("the vcsgc ensemble has no T = inf row (its weight keeps the kappa term)")
            n_fixed = n_ones if ensemble == "canonical" else None
            row, energy = _infinite_temperature_row(ce, lattice, species, n_fixed, rng, sro_shells=sro_shells)
            rows.append({"ensemble": ensemble, **row})
            samples.append(pd.DataFrame({"beta": 0.0, "chain": 0, "record": np.arange(len(energy)), "energy": energy}))
            final.append(x)
            continue
        kwargs = dict(structure=structure, calculator=calc, temperature=float(temperature),
                      boltzmann_constant=K_B_EV, random_seed=int(rng.integers(2**31)), ensemble_data_write_interval=n,
                      trajectory_write_interval=n)
        if ensemble == "canonical":
            mc = CanonicalEnsemble(**kwargs)
        elif ensemble == "vcsgc":
            mc = VCSGCEnsemble(phis={species[1]: float(phi)}, kappa=float(kappa), **kwargs)
        else:
            mc = SemiGrandCanonicalEnsemble(chemical_potentials={species[0]: 0.0, species[1]: 2.0 * dmu}, **kwargs)
        start = time.perf_counter()
        mc.run(steps_per_site * n)
        seconds = time.perf_counter() - start
        data = mc.data_container.data
        structure = mc.structure  # continue the next temperature from here
        series = trajectory_observables(lattice, _trajectory(mc, data), number_one, sro_shells)
        energy = data["potential"].to_numpy(dtype=np.float64)
        if ensemble == "semi_grand":
            # report the semi-grand energy E - dmu sum s, as SemiGrand and the torch samplers do
            n_ones_series = data[f"{species[1]}_count"].to_numpy(dtype=np.float64)
            if not np.allclose(series["composition"] * n, n_ones_series):
                raise RuntimeError("mchammer's recorded configurations do not match its species counts")
            energy = energy - dmu * (2.0 * n_ones_series - n)
        row = _summarize(data, energy, series, float(temperature), n, seconds, steps_per_site * n)
        if ensemble == "vcsgc":
            slope = summarize(data[f"free_energy_derivative_{species[1]}"].to_numpy(np.float64)[row["n_discarded"]:],
                              discard=0)
            row.update(phi=float(phi), kappa=float(kappa), free_energy_derivative_per_site=slope.mean,
                       free_energy_derivative_per_site_err=slope.error)
        rows.append({"ensemble": ensemble, **row})
        t0 = row["n_discarded"]
        samples.append(pd.DataFrame({"beta": row["beta"], "chain": 0, "record": np.arange(t0, len(energy)),
                                     "energy": energy[t0:]}))
        final.append((structure.numbers == number_one).astype(int))
    return RecordedScan(pd.DataFrame(rows), pd.concat(samples, ignore_index=True), np.stack(final))


def _infinite_temperature_row(ce: ClusterExpansion, lattice: Lattice, species: Sequence[str], n_ones: int | None,
                              rng: np.random.Generator, n_samples: int = 4096,
                              sro_shells: int | None = None) -> tuple[dict, np.ndarray]:
    """The beta = 0 point (its row and the sampled energies), where ln Z is known, by exact
    independent sampling.

    Every configuration (of the fixed composition, if ``n_ones`` is given) is equally likely, so
    uniform random configurations are exact samples; mchammer cannot run at infinite T.
    Semi-grand energies need no field term: <sum s> = 0 at beta = 0 for any dmu.
    """
    from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian

    n = lattice.n_sites
    if n_ones is None:
        x = rng.integers(0, 2, size=(n_samples, n))
    else:
        x = (rng.random((n_samples, n)).argsort(axis=1) < n_ones).astype(np.int64)
    energy = ClusterExpansionHamiltonian(ce, lattice, species=tuple(species)).energy(torch.as_tensor(x)).numpy()
    row = {"temperature": np.inf, "beta": 0.0, "n_samples": n_samples, "n_discarded": 0,
           "energy": energy.mean(), "energy_err": energy.std(ddof=1) / np.sqrt(n_samples),
           "energy_per_site": energy.mean() / n, "energy_per_site_err": energy.std(ddof=1) / np.sqrt(n_samples) / n,
           "heat_capacity": 0.0, "heat_capacity_err": 0.0, "heat_capacity_per_site": 0.0,
           "heat_capacity_per_site_err": 0.0, "tau_int": 0.5, "n_eff": float(n_samples),
           "acceptance": 1.0, "trial_steps_per_second": np.nan}
    # independent samples: standard error std / sqrt(M); NaN where undefined on some sample
    series = evaluate_observables(standard_observables(lattice, sro_shells=sro_shells), torch.as_tensor(x))
    for col, values in series.items():
        finite = np.all(np.isfinite(values))
        row[col] = values.mean() if finite else np.nan
        row[f"{col}_err"] = values.std(ddof=1) / np.sqrt(n_samples) if finite else np.nan
    return row, energy


def _summarize(data: pd.DataFrame, energy: np.ndarray, series: dict[str, np.ndarray], temperature: float, n: int,
               seconds: float, trials: int) -> dict:
    """One tidy row: energy (blocking), heat capacity (jackknife) and every observable series
    (blocking) after the equilibration prefix detected on the energy."""
    summary = summarize(energy)
    t0 = summary.n_discarded
    beta = 1.0 / (K_B_EV * temperature)
    # C = var(E) / (k_B T^2) = k_B beta^2 var(E), in eV/K
    c, c_err = jackknife(lambda s: heat_capacity(s, beta, boltzmann_constant=K_B_EV), energy[t0:])
    row = {"temperature": temperature, "beta": beta, "n_samples": len(energy) - t0, "n_discarded": t0,
           "energy": summary.mean, "energy_err": summary.error,
           "energy_per_site": summary.mean / n, "energy_per_site_err": summary.error / n,
           "heat_capacity": c, "heat_capacity_err": c_err,
           "heat_capacity_per_site": c / n, "heat_capacity_per_site_err": c_err / n, "tau_int": summary.tau_int, "n_eff": summary.n_eff,
           "acceptance": float(data["acceptance_ratio"].to_numpy(dtype=np.float64)[t0:].mean()),
           "trial_steps_per_second": trials / seconds}
    # Warren-Cowley parameters are NaN when a species is absent; such runs get NaN averages
    for col, values in series.items():
        values = values[t0:]
        if np.all(np.isfinite(values)):
            s = summarize(values, discard=0)
            row[col], row[f"{col}_err"] = s.mean, s.error
        else:
            row[col], row[f"{col}_err"] = np.nan, np.nan
    return row
