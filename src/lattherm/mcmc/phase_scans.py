"""The scans of an alloy's phase diagram on the batched torch MCMC (many chains per state).

* Canonical scans, one per concentration: parallel tempering (exact parallel swaps, bit-sliced
  over chains, between exchanges) over the temperatures from T = inf down, ``chains`` chains
  per temperature; MBAR over all recorded energies gives F(x, T) with its error bar
  (:mod:`lattherm.mcmc.mbar`, the ``lattherm mcmc integrate`` step), the order parameters
  label the phases, and the lowest-energy final configuration at each temperature is the
  structure that StructureMatcher checks.
* Semi-grand scans, one per direction: at every temperature of ``semi_grand_temperatures``,
  dmu swept upward from pure species 0 (``up``) or downward from pure species 1 (``down``),
  each chain's configuration carried from one dmu to the next, the analogue of heating and
  cooling. Where the two directions disagree beyond their error bars a first-order jump has
  left a hysteresis loop (:func:`lattherm.analysis.phase_diagram.hysteresis_windows`).
* VCSGC scans, one per temperature of ``vcsgc_temperatures``: a variance-constrained
  semi-grand phi scan (:func:`lattherm.mcmc.vcsgc.alloy_vcsgc_scan`, replica exchange between
  neighbouring phis) that samples inside the two-phase regions too and gives d(F/N)/dc per phi and
  F(c) by reweighting the composition histograms of all phis
  (:func:`lattherm.mcmc.vcsgc.vcsgc_free_energy`), cross-checked against the canonical F(x, T) (:func:`lattherm.analysis.phase_diagram.vcsgc_cross_check`).

Conventions: x = 1 is ``species[1]`` (Au for CuAu); dmu as in
:class:`lattherm.hamiltonians.SemiGrand` (energy E - dmu sum_i s_i, s = 2x - 1), so the
equilibrium composition minimises f(x) - dmu (2x - 1): dmu = (1/2) df/dx per site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from lattherm import K_B_EV
from lattherm.ce.storage import ce_species, check_lattice, parent_lattice, read_cluster_expansion
from lattherm.errors import LatthermError
from lattherm.lattices import Lattice, cell_sites, make_lattice
from lattherm.mcmc.moves import Flip, Swap
from lattherm.mcmc.samplers import energy_samples, run_chains, summarize_chains
from lattherm.observables import standard_observables
from lattherm.phases import ORDERED, ordered_phase_at
from lattherm.schema import ConfigError, from_block

DMU_DIRECTIONS = ("up", "down")
SEMI_GRAND_OBSERVABLES = ("composition", "order_parameter", "order_l12", "order_l10")  # what x(dmu) needs, cheaply
MIN_RECORDED = 128  # recorded sweeps per chain: up to half is discarded as equilibration, blocking needs 64


class ScanSettingsError(LatthermError):
    """A scan setting (direction, composition, temperatures, length) that cannot run."""


@dataclass
class PhaseDiagramConfig:
    """The scans of one alloy for its phase diagram (``$defs/phase_diagram``), all batched torch
    MCMC: canonical parallel tempering at each concentration (``chains`` chains per
    temperature, ``sweeps`` sweeps, the first ``burn_in`` not recorded; MBAR F(x, T) from
    T = inf); semi-grand x(dmu) scans both ways at each of ``semi_grand_temperatures``
    (``semi_grand_sweeps`` sweeps per chain at each dmu); and at each of
    ``heating_concentrations`` the ordered and disordered branches of
    :mod:`lattherm.mcmc.coexistence` (``branch_chains`` chains per temperature), whose free
    energies cross at T_c, sought in ``transition_temperatures``; and a VCSGC phi scan at each
    of ``vcsgc_temperatures`` (``vcsgc_phi_count`` phis, ``vcsgc_chains`` chains per phi,
    constraint ``vcsgc_kappa``)."""

    alloy: str
    size: list[int]
    temperatures: list[float]
    concentrations: list[float]
    dmus: list[float]
    lattice: str = "fcc_cubic"
    chains: int = 64
    sweeps: int = 200
    burn_in: int = 50
    semi_grand_temperatures: list[float] = field(default_factory=list)
    semi_grand_chains: int = 32
    semi_grand_sweeps: int = 160
    semi_grand_burn_in: int = 32
    hull_tolerance: float = 1.0e-4
    heating_concentrations: list[float] = field(default_factory=list)
    transition_temperatures: list[float] = field(default_factory=list)
    branch_chains: int = 32
    branch_sweeps: int = 300
    branch_burn_in: int = 50
    vcsgc_temperatures: list[float] = field(default_factory=list)
    vcsgc_kappa: float = 50.0
    vcsgc_phi_count: int = 39
    vcsgc_chains: int = 8
    vcsgc_sweeps: int = 300
    vcsgc_burn_in: int = 60

    @classmethod
    def from_dict(cls, block: dict, where: str = "phase_diagram") -> "PhaseDiagramConfig":
        config = from_block(cls, block, "phase_diagram", where)
        try:
            n = cell_sites(config.lattice, config.size)
        except LatthermError as exc:
            raise ConfigError(f"{where}.size = {config.size}: {exc}") from None
        for i, x in enumerate(config.concentrations):
            if abs(x * n - round(x * n)) > 1e-9:
                raise ConfigError(f"{where}.concentrations[{i}] = {x!r} gives {x * n:g} species-1 sites on the "
                                  f"{config.size} {config.lattice} cell of {n} sites; it must give a whole number")
        for i, x in enumerate(config.heating_concentrations):
            if ordered_phase_at(x) is None:
                raise ConfigError(f"{where}.heating_concentrations[{i}] = {x!r} has no ordered prototype to heat from "
                                  f"(prototypes: {', '.join(f'{k} at {v[0]}' for k, v in ORDERED.items())})")
            if not any(abs(x - c) < 1e-9 for c in config.concentrations):
                raise ConfigError(f"{where}.heating_concentrations[{i}] = {x!r} is not one of the concentrations")
        if config.heating_concentrations and not config.transition_temperatures:
            raise ConfigError(f"{where}.transition_temperatures is empty: heating_concentrations "
                              f"{config.heating_concentrations} need the window (K) where T_c is sought")
        for prefix in ("", "semi_grand_", "branch_", "vcsgc_"):
            sweeps, burn_in = getattr(config, f"{prefix}sweeps"), getattr(config, f"{prefix}burn_in")
            if sweeps - burn_in < MIN_RECORDED:
                raise ConfigError(f"{where}.{prefix}sweeps - {prefix}burn_in = {sweeps - burn_in}: a scan needs at "
                                  f"least {MIN_RECORDED} recorded sweeps per chain for its error analysis")
        for i, t in enumerate(config.semi_grand_temperatures):
            if t not in config.temperatures:
                raise ConfigError(f"{where}.semi_grand_temperatures[{i}] = {t!r} is not one of the temperatures: the "
                                  "semi-grand scans are checked against F(x, T) of the canonical scans there")
        for i, t in enumerate(config.vcsgc_temperatures):
            if t not in config.temperatures:
                raise ConfigError(f"{where}.vcsgc_temperatures[{i}] = {t!r} is not one of the temperatures: the "
                                  "VCSGC F(c) is checked against F(x, T) of the canonical scans there")
        if len(set(config.dmus)) < 2:
            raise ConfigError(f"{where}.dmus = {config.dmus}: the semi-grand scans sweep dmu both ways and need "
                              "at least two distinct values")
        if config.heating_concentrations and config.lattice != "fcc_cubic":
            raise ConfigError(f"{where}.lattice = {config.lattice!r}: heating from an ordered FCC phase needs "
                              "lattice fcc_cubic, whose cells hold the four simple-cubic sublattices")
        return config

    def _hamiltonian(self, ce_file):
        """The CE on the scans' cell, checked against it, and the cell."""
        from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian

        ce = read_cluster_expansion(ce_file)
        lattice = make_lattice(self.lattice, self.size, a=parent_lattice(ce)[1])
        check_lattice(ce, lattice, ce_file)
        return ClusterExpansionHamiltonian(ce, lattice, species=tuple(ce_species(ce))), lattice

    def canonical(self, ce_file, concentration: float, seed: int = 0, progress: bool = True) -> "CanonicalScan":
        """The canonical scan of the CE in ``ce_file`` at ``concentration``
        (:func:`canonical_scan`); its table names the concentration and the cell."""
        hamiltonian, lattice = self._hamiltonian(ce_file)
        n_ones = round(concentration * lattice.n_sites)
        if abs(concentration * lattice.n_sites - n_ones) > 1e-9:
            raise ScanSettingsError(f"concentration {concentration} gives {concentration * lattice.n_sites:g} "
                                    f"species-1 sites on the {lattice.n_sites}-site cell; it must give a whole number")
        result = canonical_scan(hamiltonian, lattice, self.temperatures, n_ones, self.chains, self.sweeps,
                                self.burn_in, seed, progress)
        result.table["concentration"] = concentration
        return result

    def semi_grand(self, ce_file, direction: str, seed: int = 0, progress: bool = True) -> pd.DataFrame:
        """The semi-grand x(dmu) scan of the CE in ``ce_file`` in ``direction`` at every
        ``semi_grand_temperatures`` (:func:`semi_grand_scan`)."""
        if not self.semi_grand_temperatures:
            raise ScanSettingsError("phase_diagram.semi_grand_temperatures is empty: no temperature to scan dmu at")
        hamiltonian, lattice = self._hamiltonian(ce_file)
        return semi_grand_scan(hamiltonian, lattice, self.semi_grand_temperatures, self.dmus, direction,
                               self.semi_grand_chains, self.semi_grand_sweeps, self.semi_grand_burn_in, seed, progress)

    @property
    def vcsgc_phis(self) -> np.ndarray:
        """The phis of a VCSGC scan: -2 c for ``vcsgc_phi_count`` c evenly inside (0, 1), the
        compositions that <c> ~ -phi / 2 aims at (pulled towards lower F by d(F/N)/dc / (2 kappa k_B T))."""
        return -2.0 * np.arange(1, self.vcsgc_phi_count + 1) / (self.vcsgc_phi_count + 1)

    def vcsgc(self, ce_file, temperature: float, seed: int = 0, progress: bool = True
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The VCSGC phi scan of the CE in ``ce_file`` at ``temperature``, one of
        ``vcsgc_temperatures`` (:func:`lattherm.mcmc.vcsgc.alloy_vcsgc_scan`): <c> and d(F/N)/dc
        with errors, one row per phi, and the composition histograms (F(c) by reweighting)."""
        from lattherm.mcmc.vcsgc import alloy_vcsgc_scan

        if not any(math.isclose(temperature, t, rel_tol=1e-12) for t in self.vcsgc_temperatures):
            raise ScanSettingsError(f"temperature {temperature} K is not one of phase_diagram.vcsgc_temperatures "
                                    f"{self.vcsgc_temperatures}")
        return alloy_vcsgc_scan(self.alloy, ce_file, self.lattice, self.size, temperature, self.vcsgc_phis,
                                self.vcsgc_kappa, self.vcsgc_chains, self.vcsgc_sweeps, self.vcsgc_burn_in, seed,
                                progress)

    def transition(self, ce_file, concentration: float, seed: int = 0, progress: bool = True):
        """The ordered phase of ``concentration`` and the disordered phase on their branches, and
        where their free energies cross (:func:`lattherm.mcmc.coexistence.transition`): returns
        (heating table: the ordered branch as a scan, one row per temperature; both branches,
        tidy; one crossing row with T_c and its errors)."""
        from lattherm.mcmc.coexistence import BranchSettings, transition

        phase = ordered_phase_at(concentration)
        if phase is None:
            raise ScanSettingsError(f"no ordered prototype at concentration {concentration} "
                                    f"(prototypes: {', '.join(f'{k} at {v[0]}' for k, v in ORDERED.items())})")
        hamiltonian, lattice = self._hamiltonian(ce_file)
        settings = BranchSettings(self.branch_chains, self.branch_sweeps, self.branch_burn_in)
        n = lattice.n_sites
        ordered, disordered, found = transition(hamiltonian, lattice, round(concentration * n), phase,
                                                self.temperatures, self.transition_temperatures, settings, seed,
                                                progress)
        heating = ordered.assign(concentration=concentration, direction="heating")
        branches = pd.concat([ordered, disordered], ignore_index=True).assign(concentration=concentration)
        crossing = pd.DataFrame([{"concentration": concentration, "phase": phase, "n_sites": n, **found}])
        return heating, branches, crossing

    def lattice_of(self, ce_file) -> Lattice:
        """The scans' cell, with the CE's lattice constant."""
        return make_lattice(self.lattice, self.size, a=parent_lattice(read_cluster_expansion(ce_file))[1])


@dataclass
class CanonicalScan:
    """A canonical scan's tidy table (one row per temperature, T = inf first), its recorded
    energies after equilibration (beta, chain, record, energy: for MBAR) and the lowest-energy
    final configuration at each temperature (0/1 occupations, (T, N))."""

    table: pd.DataFrame
    samples: pd.DataFrame
    final: np.ndarray


def _betas(temperatures) -> np.ndarray:
    return np.array([0.0 if math.isinf(t) else 1.0 / (K_B_EV * t) for t in temperatures])


def canonical_scan(hamiltonian, lattice: Lattice, temperatures, n_ones: int, chains: int, sweeps: int, burn_in: int,
                   seed: int = 0, progress: bool = True) -> CanonicalScan:
    """Parallel tempering of ``chains`` chains per temperature (K) from T = inf down, every
    chain holding ``n_ones`` species-1 sites, random starts: exact parallel swaps between
    exchanges of neighbouring temperatures (the exchanges carry ordered configurations found
    at one temperature to the next, so low temperatures do not stay in the domains of a
    quench). One tidy row per temperature (:func:`lattherm.mcmc.samplers.summarize_chains`:
    energy, heat capacity, order parameters with errors; the exchange acceptance upward) with
    ``direction`` cooling, ``n_sites`` and ``n_ones``; the recorded energies for MBAR."""
    temperatures = [math.inf, *sorted((float(t) for t in temperatures), reverse=True)]
    betas = _betas(temperatures)
    result = run_chains(hamiltonian, betas, chains, sweeps, move=Swap(hamiltonian, parallel=True), n_ones=n_ones,
                        burn_in=burn_in, seed=seed, observables=standard_observables(lattice), exchange=True,
                        progress=progress)
    table = summarize_chains(result, lattice.n_sites, temperatures)
    table.insert(0, "ensemble", "canonical")
    table["direction"] = "cooling"
    table["n_sites"] = lattice.n_sites
    table["n_ones"] = n_ones
    final = result.final.view(len(betas), chains, -1)
    energy = hamiltonian.energy(result.final).view(len(betas), chains)
    lowest = final[torch.arange(len(betas)), energy.argmin(dim=1)].cpu().numpy()
    return CanonicalScan(table, energy_samples(result, table), lowest)


def semi_grand_scan(hamiltonian, lattice: Lattice, temperatures, dmus, direction: str, chains: int, sweeps: int,
                    burn_in: int, seed: int = 0, progress: bool = True, boltzmann_constant: float = K_B_EV
                    ) -> pd.DataFrame:
    """x(dmu) at every temperature (beta = 1 / (boltzmann_constant T): kelvin for a CE) with dmu
    swept ``up`` from pure species 0 or ``down`` from pure species 1: at each dmu ``chains``
    independent chains per temperature run ``sweeps`` single-site flip sweeps (the first
    ``burn_in`` not recorded; a detected equilibration prefix is dropped as well) of
    :class:`SemiGrand` ``hamiltonian`` at dmu, each starting from its own configuration at the
    previous dmu. No exchanges between temperatures: a chain leaves a metastable phase only by
    nucleating the stable one, as in a heating or cooling experiment, so first-order jumps lag
    behind the equilibrium dmu in each direction.

    One tidy row per (temperature, dmu) in scan order: the :func:`summarize_chains` columns
    (``energy`` is the semi-grand E - dmu sum s; :data:`SEMI_GRAND_OBSERVABLES` with blocking
    errors, the order parameters where the lattice has them) with ``ensemble`` semi_grand, ``dmu``, ``direction`` and ``n_sites``."""
    from lattherm.hamiltonians.base import SemiGrand

    if direction not in DMU_DIRECTIONS:
        raise ScanSettingsError(f"direction must be one of {DMU_DIRECTIONS}, got {direction!r}")
    if sweeps - burn_in < MIN_RECORDED:
        raise ScanSettingsError(f"sweeps - burn_in = {sweeps - burn_in}: a scan needs at least {MIN_RECORDED} "
                                "recorded sweeps per chain for its error analysis")
    temperatures = [float(t) for t in temperatures]
    if not temperatures or not all(0 < t < math.inf for t in temperatures):
        raise ScanSettingsError(f"semi-grand temperatures must be finite and positive, got {temperatures}")
    dmus = sorted({float(d) for d in dmus}, reverse=direction == "down")
    observables = {k: v for k, v in standard_observables(lattice).items() if k in SEMI_GRAND_OBSERVABLES}
    betas = 1.0 / (boltzmann_constant * np.asarray(temperatures))
    n = lattice.n_sites
    x = torch.full((len(temperatures) * chains, n), int(direction == "down"), dtype=torch.long,
                   device=hamiltonian.device)
    tables = []
    for k, dmu in enumerate(dmus):
        semi = SemiGrand(hamiltonian, dmu)
        result = run_chains(semi, betas, chains, sweeps, move=Flip(semi), burn_in=burn_in,
                            seed=seed + k + 1000 * DMU_DIRECTIONS.index(direction), observables=observables,
                            progress=progress, start=x)
        x = result.final  # carried to the next dmu
        tables.append(summarize_chains(result, n, temperatures).assign(dmu=dmu))
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "ensemble", "semi_grand")
    table["direction"] = direction
    table["n_sites"] = n
    return table
