"""Systems as data: the typed config of a lattice model, and the one place that builds it.

A system block (one entry of the workflow's ``systems:`` mapping, or a YAML/JSON file given to
the command line) has exactly the fields of :class:`SystemConfig`, with the schema's defaults
(``$defs/system`` in ``config.schema.yaml``)::

    model: ising                 # ising | edwards_anderson | sherrington_kirkpatrick | cluster_expansion
    lattice: square
    J: 2.0
    train_size: [6, 6]
    transfer_sizes: [[12, 12]]
    temperatures: [4.0, 4.538, 5.2]
    neural_temperatures: [4.538]
    mcmc: {temperatures: [40.0, 8.0, 4.538, 4.0], chains: 16, sweeps: 600, burn_in: 100}

:func:`build_system` turns a config into a :class:`System` (lattice, Hamiltonian, ensemble,
units) at one of its cell sizes; a cluster expansion's file is given with it (the block names
the alloy, the workflow makes the file).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lattherm import K_B_EV
from lattherm.errors import LatthermError
from lattherm.hamiltonians.base import Hamiltonian, SemiGrand
from lattherm.hamiltonians.ising import MAX_SK_SITES, EdwardsAnderson, Ising, SherringtonKirkpatrick
from lattherm.io import load_yaml
from lattherm.lattices import MAX_SITES, Lattice, cell_sites, make_lattice
from lattherm.schema import ConfigError, field_name, from_block, schema_defaults

RECORDED_SWEEPS = 128  # the fewest recorded sweeps per chain the MCMC error analysis accepts
_MODEL_FIELDS = {  # fields that only some models read
    "ising": {"J", "h"},
    "edwards_anderson": {"couplings", "coupling_seed", "disorder_samples"},
    "sherrington_kirkpatrick": {"couplings", "coupling_seed", "disorder_samples"},
    "cluster_expansion": {"alloy"},
}
_MODEL_LATTICES = {
    "ising": ("square", "simple_cubic", "fcc", "fcc_cubic", "bcc", "bcc_cubic"),
    "edwards_anderson": ("square", "simple_cubic"),
    "sherrington_kirkpatrick": (None,),
    "cluster_expansion": ("fcc", "fcc_cubic", "bcc", "bcc_cubic"),
}
_SPIN_SPECIES = ["down", "up"]
SPIN_GLASS_MODELS = ("edwards_anderson", "sherrington_kirkpatrick")
DEFAULT_COUPLINGS = {"edwards_anderson": "pm_j", "sherrington_kirkpatrick": "gaussian"}


@dataclass
class McmcConfig:
    """The MCMC reference scans of a system (``$defs/mcmc``)."""

    temperatures: list[float]
    move: str | None = None
    chains: int = 64
    sweeps: int = 2000
    burn_in: int = 200
    rungs: int | None = None

    @classmethod
    def from_dict(cls, block: dict, where: str = "mcmc") -> "McmcConfig":
        config = from_block(cls, block, "mcmc", where)
        if config.rungs is not None and config.rungs < len(config.temperatures):
            raise ConfigError(f"{where}.rungs = {config.rungs} cannot hold the {len(config.temperatures)} "
                              f"temperatures of {where}.temperatures")
        if config.sweeps - config.burn_in < RECORDED_SWEEPS:
            raise ConfigError(f"{where}.sweeps = {config.sweeps} with burn_in = {config.burn_in} records "
                              f"{max(config.sweeps - config.burn_in, 0)} sweeps per chain; at least {RECORDED_SWEEPS}")
        return config


@dataclass
class SystemConfig:
    """One lattice model and how it is studied (``$defs/system``)."""

    model: str
    train_size: list[int]
    lattice: str | None = None
    transfer_sizes: list[list[int]] = field(default_factory=list)
    J: float = 1.0
    h: float = 0.0
    couplings: str | None = None
    coupling_seed: int = 0
    disorder_samples: int = 1
    alloy: str | None = None
    ensemble: str = "semi_grand"
    concentration: float | None = None
    dmu: float | None = None
    temperatures: list[float] = field(default_factory=list)
    neural_temperatures: list[float] = field(default_factory=list)
    neural_models: list[str] | None = None
    training: dict | None = None
    mcmc: McmcConfig | None = None

    @classmethod
    def from_dict(cls, block: dict, where: str = "system") -> "SystemConfig":
        """Validate a block (schema, then across fields); errors name ``where.field``."""
        config = from_block(cls, block, "system", where,
                            mcmc=lambda mcmc, at: None if mcmc is None else McmcConfig.from_dict(mcmc, at))
        defaults = schema_defaults(cls)
        config._check({key for key, value in block.items() if key not in defaults or value != defaults[key]}, where)
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def spin_glass(self) -> bool:
        """Quenched random couplings: the replica overlap P(q) is an observable."""
        return self.model in SPIN_GLASS_MODELS

    @property
    def coupling_kind(self) -> str | None:
        """A spin glass's couplings: as configured, else its model's default (:data:`DEFAULT_COUPLINGS`)."""
        return (self.couplings or DEFAULT_COUPLINGS[self.model]) if self.spin_glass else None

    @property
    def gaussian_glass(self) -> bool:
        """Gaussian couplings and no semi-grand field: the energy / link-overlap identity holds
        (:func:`lattherm.hamiltonians.ising.gaussian_bonds`)."""
        return self.coupling_kind == "gaussian" and not self.dmu

    def disorder_members(self, name: str) -> dict[str, "SystemConfig"]:
        """The systems one block stands for, by name: itself, or with ``disorder_samples`` = n > 1,
        one system per coupling draw, ``{name}_seed{s}`` for s = coupling_seed .. coupling_seed + n - 1
        (each with ``disorder_samples`` = 1)."""
        if self.disorder_samples == 1:
            return {name: self}
        seeds = range(self.coupling_seed, self.coupling_seed + self.disorder_samples)
        return {f"{name}_seed{seed}": replace(self, coupling_seed=seed, disorder_samples=1) for seed in seeds}

    @property
    def sizes(self) -> list[list[int]]:
        return [self.train_size, *self.transfer_sizes]

    @property
    def move(self) -> str:
        """The MCMC move: the configured one, else the ensemble's natural one."""
        return (self.mcmc and self.mcmc.move) or ("swap" if self.ensemble == "canonical" else "flip")

    def n_sites(self, size: list[int]) -> int:
        return size[0] if self.lattice is None else cell_sites(self.lattice, size)

    def check_size(self, size: list[int], where: str) -> int:
        """Sites of the cell ``size``, after checking that this system can have it."""
        if self.lattice is None:
            if len(size) != 1 or size[0] < 2:
                raise ConfigError(f"{where} = {list(size)}: sherrington_kirkpatrick takes [N] with N >= 2")
        else:
            try:
                cell_sites(self.lattice, size)
            except LatthermError as exc:
                raise ConfigError(f"{where} = {list(size)}: {exc}") from None
        n = self.n_sites(size)
        limit = MAX_SK_SITES if self.model == "sherrington_kirkpatrick" else MAX_SITES
        if n > limit:
            raise ConfigError(f"{where} = {list(size)} gives {n} sites; a {self.model} system may have at most {limit}")
        if self.ensemble == "canonical":
            count = self.concentration * n
            if abs(count - round(count)) > 1e-9:
                raise ConfigError(f"{where} = {list(size)}: concentration {self.concentration} gives {count:g} "
                                  f"species-1 sites of {n}; it must give a whole number")
        return n

    def _check(self, given: set[str], where: str) -> None:
        """Cross-field rules; ``given`` holds the fields set to other than their defaults."""
        foreign = sorted(given & set().union(*_MODEL_FIELDS.values()) - _MODEL_FIELDS[self.model])
        if foreign:
            raise ConfigError(f"{where}.{foreign[0]} does not apply to model {self.model!r}")
        if self.lattice not in _MODEL_LATTICES[self.model]:
            allowed = ", ".join(str(k) for k in _MODEL_LATTICES[self.model])
            raise ConfigError(f"{where}.lattice = {self.lattice!r}: model {self.model!r} takes lattice {allowed}"
                              + (" (and train_size [N])" if self.model == "sherrington_kirkpatrick" else ""))
        if self.model == "cluster_expansion" and self.alloy is None:
            raise ConfigError(f"{where}.alloy is missing: a cluster_expansion names its alloy")
        canonical = self.ensemble == "canonical"
        if canonical and self.concentration is None:
            raise ConfigError(f"{where}.concentration is missing: the canonical ensemble needs the fraction of species 1")
        if canonical and self.dmu is not None:
            raise ConfigError(f"{where}.dmu = {self.dmu!r} applies to the semi_grand ensemble only")
        if not canonical and self.concentration is not None:
            raise ConfigError(f"{where}.concentration = {self.concentration!r} applies to the canonical ensemble only")
        for i, size in enumerate(self.sizes):
            self.check_size(size, field_name(where, "train_size") if i == 0 else field_name(where, "transfer_sizes", i - 1))
        for i, size in enumerate(self.transfer_sizes):
            # A transferred transformer keeps the rotary periods of its training cell.
            if len(size) != len(self.train_size) or any(s % t for s, t in zip(size, self.train_size)):
                raise ConfigError(f"{where}.transfer_sizes[{i}] = {size} does not repeat train_size = "
                                  f"{self.train_size} along every axis")
        move = self.move
        if (move == "swap") != canonical:
            raise ConfigError(f"{where}.mcmc.move = {move!r} does not sample the {self.ensemble} ensemble "
                              "(canonical needs swap; semi_grand flip or wolff)")
        if move == "wolff" and not (self.model == "ising" and self.h == 0 and self.J > 0 and not self.dmu):
            raise ConfigError(f"{where}.mcmc.move = 'wolff' needs a zero-field ferromagnetic ising model")
        if self.mcmc is not None and self.mcmc.rungs is not None and not self.spin_glass:
            raise ConfigError(f"{where}.mcmc.rungs = {self.mcmc.rungs} applies to spin glasses only (their references "
                              f"are parallel tempering), not to model {self.model!r}")
        if self.training is not None and not self.neural_temperatures:
            raise ConfigError(f"{where}.training = {self.training} overrides the training of neural runs, but "
                              f"{where}.neural_temperatures is empty")
        for i, t in enumerate(self.neural_temperatures):
            if not any(math.isclose(t, g, rel_tol=1e-9) for g in self.temperatures):
                raise ConfigError(f"{where}.neural_temperatures[{i}] = {t!r} is not on the evaluation grid "
                                  f"temperatures = {self.temperatures}")


@dataclass(eq=False)
class System:
    """A lattice model ready to sample: geometry, Hamiltonian, species and temperature units.

    ``hamiltonian`` already includes the semi-grand term -dmu sum s when dmu != 0.
    ``n_ones`` is the number of species-1 sites of the canonical ensemble (None when semi-grand),
    ``dmu`` the semi-grand field (None when canonical). Temperatures are in units of J / k_B for
    spin models and in kelvin for cluster expansions.
    """

    name: str
    config: SystemConfig
    size: list[int]
    lattice: Lattice | None
    hamiltonian: Hamiltonian
    species: list[str]
    n_ones: int | None
    dmu: float | None
    energy_unit: str

    @property
    def ensemble(self) -> str:
        return self.config.ensemble

    @property
    def n_sites(self) -> int:
        return self.hamiltonian.n_sites

    @property
    def cell(self) -> Lattice | int:
        """What a neural model is built on: the lattice, or the site count where there is none."""
        return self.n_sites if self.lattice is None else self.lattice

    def beta(self, temperature: float) -> float:
        """Inverse temperature in inverse energy units of the Hamiltonian (``inf`` gives 0)."""
        temperature = float(temperature)
        if not temperature > 0:
            raise LatthermError(f"temperature must be positive, got {temperature}")
        return 1.0 / (K_B_EV * temperature) if self.energy_unit == "eV" else 1.0 / temperature

    def temperature(self, beta: float) -> float:
        """Inverse of :meth:`beta` (beta = 0 gives ``inf``)."""
        beta = float(beta)
        if not (math.isfinite(beta) and beta >= 0):
            raise LatthermError(f"beta must be finite and non-negative, got {beta}")
        if beta == 0:
            return math.inf
        return 1.0 / (K_B_EV * beta) if self.energy_unit == "eV" else 1.0 / beta


def build_system(config: SystemConfig | dict, size: list[int] | None = None,
                 ce_file: str | os.PathLike | None = None, name: str = "system") -> System:
    """The :class:`System` of ``config`` on the cell ``size`` (default: its training cell).

    A cluster expansion needs ``ce_file`` (lattherm's JSON format, :mod:`lattherm.ce.storage`):
    its lattice constant and species order come from the file.
    """
    if not isinstance(config, SystemConfig):
        config = SystemConfig.from_dict(config, where=name)
    size = list(config.train_size if size is None else size)
    config.check_size(size, f"the size of system {name!r}")
    model = config.model
    species = _SPIN_SPECIES
    lattice = make_lattice(config.lattice, size) if config.lattice is not None and model != "cluster_expansion" else None
    if model == "ising":
        hamiltonian: Hamiltonian = Ising(lattice, J=config.J, h=config.h)
    elif model == "edwards_anderson":
        hamiltonian = EdwardsAnderson(lattice, seed=config.coupling_seed, couplings=config.coupling_kind)
    elif model == "sherrington_kirkpatrick":
        hamiltonian = SherringtonKirkpatrick(size[0], seed=config.coupling_seed,
                                             couplings=config.coupling_kind)
    else:
        hamiltonian, lattice, species = _cluster_expansion(config, size, ce_file, name)
    n_ones, dmu = None, None
    if config.ensemble == "canonical":
        n_ones = round(config.concentration * hamiltonian.n_sites)  # a whole number: see check_size
    else:
        dmu = float(config.dmu or 0.0)
        if dmu != 0.0:
            hamiltonian = SemiGrand(hamiltonian, dmu)
    return System(name=name, config=config, size=size, lattice=lattice, hamiltonian=hamiltonian,
                  species=list(species), n_ones=n_ones, dmu=dmu,
                  energy_unit="eV" if model == "cluster_expansion" else "J")


def _cluster_expansion(config: SystemConfig, size: list[int], ce_file, name: str):
    # Imported here so that spin-model users do not pay for icet.
    from lattherm.ce.storage import ce_species, check_lattice, parent_lattice, read_cluster_expansion
    from lattherm.hamiltonians.cluster_expansion import ClusterExpansionError, ClusterExpansionHamiltonian

    if ce_file is None:
        raise ConfigError(f"system {name!r} is a cluster expansion of alloy {config.alloy!r}: give its CE file (--ce)")
    ce = read_cluster_expansion(ce_file)
    lattice = make_lattice(config.lattice, size, a=parent_lattice(ce)[1])
    check_lattice(ce, lattice, ce_file)
    species = ce_species(ce)
    try:
        return ClusterExpansionHamiltonian(ce, lattice, species), lattice, species
    except ClusterExpansionError as exc:
        raise ClusterExpansionError(f"{ce_file}: {exc}") from None


def load_system_config(path: str | os.PathLike) -> SystemConfig:
    """The checked config of a system file (YAML or JSON; cheap: builds nothing)."""
    return SystemConfig.from_dict(load_yaml(path, mapping=True), where=str(path))


def load_system(path: str | os.PathLike, size: list[int] | None = None,
                ce_file: str | os.PathLike | None = None) -> System:
    """Build the system of a file, named after the file (``results/systems/ising.json``: ising)."""
    return build_system(load_system_config(path), size, ce_file, name=Path(path).stem)
