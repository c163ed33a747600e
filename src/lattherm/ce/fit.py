"""Fit a binary cluster expansion on FCC or BCC with icet + trainstation from one of three sources.

- ``published``: energies of the published CuAu model (:mod:`lattherm.ce.published`) on icet's
  enumerated FCC structures; the fit recovers it (a check of the whole route). CuAu FCC only.
- ``emt``: ASE's EMT energies of the enumerated FCC structures of two EMT metals, either ideal
  (lattice constant by Vegard's law from the EMT-relaxed pure metals) or relaxed (cell and
  positions, BFGS).
- ``database``: a user's ASE database of binary structures with (e.g. DFT) energies on the
  ``lattice`` (fcc | bcc) with cubic lattice constant ``a``. Every row must be a decoration of a
  supercell of that lattice, possibly relaxed; it must hold only the two ``species``, and the
  database must hold each pure element, whose energies define the mixing energy.

The alloy is ``species = (A, B)`` with concentration x = fraction of B (CuAu: x = Au fraction).
The target is the mixing energy per atom, E/N - (1 - x) E_A - x E_B, so a fitted CE gives
formation energies directly. Structures enter the cluster space on the ideal lattice of constant
``a`` (relaxed or scaled copies are used for the energies only).
"""

from __future__ import annotations

import math
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from ase import Atoms
from ase.build import bulk
from ase.data import chemical_symbols as _ELEMENTS
from icet import ClusterExpansion, ClusterSpace
from icet.tools import enumerate_structures, map_structure_to_reference
from tqdm import tqdm
from trainstation import CrossValidationEstimator

from lattherm.ce.hull import formation_energies, ground_states, hull_table
from lattherm.ce.published import CUTOFFS, LATTICE_CONSTANT, SPECIES, published_cluster_expansion
from lattherm.errors import InputFileError, LatthermError
from lattherm.io import input_file
from lattherm.schema import ConfigError, from_block

SOURCES = ("published", "emt", "database")
CE_LATTICES = ("fcc", "bcc")
EMT_SPECIES = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")  # the metals ASE's EMT is parametrised for
# Nearest-neighbour distance over the cubic lattice constant.
_NN_OVER_A = {"fcc": 1 / math.sqrt(2), "bcc": math.sqrt(3) / 2}
# Mapping warnings that mean a row is not the lattice (volume alone only reflects the DFT lattice
# constant, so a high volumetric strain is accepted).
_LATTICE_MISMATCH = ("high_anisotropic_strain", "large_maximum_relaxation_distance",
                     "large_average_relaxation_distance", "possible_ambiguity_in_mapping")


@dataclass
class FitResult:
    """A fitted CE with its metrics and the hull of its training structures."""

    ce: ClusterExpansion
    metrics: dict
    table: pd.DataFrame  # every training structure: reference and CE mixing energies, hull data

    @property
    def ground_states(self) -> pd.DataFrame:
        return ground_states(self.table)


@dataclass
class AlloyConfig:
    """A binary alloy's cluster expansion: where its energies come from and its lattice
    (``$defs/alloy`` of the config schema)."""

    source: str = "published"
    database: str | None = None
    relax: bool = False
    max_atoms: int = 8
    species: list[str] = field(default_factory=lambda: list(SPECIES))
    lattice: str = "fcc"
    lattice_constant: float = LATTICE_CONSTANT
    cutoffs: list[float] | None = None

    @classmethod
    def from_dict(cls, block: dict, where: str = "alloy") -> "AlloyConfig":
        config = from_block(cls, block, "alloy", where)
        if config.source != "database" and config.database is not None:
            raise ConfigError(f"{where}.database = {config.database!r} applies to source: database only "
                              f"(source is {config.source!r})")
        if config.source == "database" and not config.database:
            raise ConfigError(f"{where}.database = {config.database!r}: source: database needs an existing ASE "
                              "database file")
        if config.source == "database":
            try:
                input_file(config.database, "ASE database")
            except InputFileError as exc:  # missing, a directory: say which
                raise ConfigError(f"{where}.database = {config.database!r}: {exc}") from None
        try:
            check_alloy(config.species, config.lattice, config.lattice_constant)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return config

    def fit(self, seed: int = 42) -> "FitResult":
        return fit_cluster_expansion(self.source, database=self.database, relax=self.relax, max_atoms=self.max_atoms,
                                     cutoffs=self.cutoffs, seed=seed, species=self.species, lattice=self.lattice,
                                     a=self.lattice_constant)


def check_alloy(species: Sequence[str], lattice: str, a: float) -> tuple[str, str]:
    """Validate a binary alloy (two distinct elements) on ``lattice`` with constant ``a``."""
    species = tuple(species)
    if len(species) != 2 or len(set(species)) != 2:
        raise ValueError(f"species must be two distinct elements, got {list(species)}")
    unknown = [s for s in species if s not in _ELEMENTS[1:]]
    if unknown:
        raise ValueError(f"species {unknown} are not chemical elements")
    if lattice not in CE_LATTICES:
        raise ValueError(f"unknown CE lattice {lattice!r}; expected one of {CE_LATTICES}")
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a <= 0:
        raise ValueError(f"lattice constant must be a positive number (Å), got {a!r}")
    return species


def primitive_structure(species: Sequence[str] = SPECIES, lattice: str = "fcc",
                        a: float = LATTICE_CONSTANT) -> Atoms:
    """The one-site primitive cell of the alloy's lattice (occupied by ``species[0]``)."""
    species = check_alloy(species, lattice, a)
    return bulk(species[0], lattice, a=float(a))


def default_cutoffs(lattice: str = "fcc", a: float = LATTICE_CONSTANT) -> list[float]:
    """The published model's cutoffs [6.0, 4.5, 4.5] Å (a = 3.8 Å FCC) in units of the
    nearest-neighbour distance, carried over to ``lattice`` and ``a``."""
    scale = _NN_OVER_A[lattice] * a / (_NN_OVER_A["fcc"] * LATTICE_CONSTANT)
    return [c * scale for c in CUTOFFS]


def concentration(atoms: Atoms, species: Sequence[str] = SPECIES) -> float:
    """Fraction of ``species[1]`` among the atoms."""
    return atoms.get_chemical_symbols().count(species[1]) / len(atoms)


def au_fraction(atoms: Atoms) -> float:
    return concentration(atoms, SPECIES)


def mixing_energies(x: np.ndarray, energy_per_atom: np.ndarray, species: Sequence[str]) -> np.ndarray:
    """E/N - (1 - x) E_A - x E_B; needs a pure structure of each element."""
    for end, symbol in zip((0.0, 1.0), species):
        if not np.isclose(x, end).any():
            raise LatthermError(f"no pure {symbol} structure: mixing energies need the energy of each "
                                f"pure element {list(species)}")
    return formation_energies(x, energy_per_atom)


def enumerated_structures(max_atoms: int = 8, species: Sequence[str] = SPECIES, lattice: str = "fcc",
                          a: float = LATTICE_CONSTANT) -> list[Atoms]:
    """All symmetry-distinct binary decorations of ``lattice`` supercells with up to ``max_atoms`` sites."""
    if not 1 <= int(max_atoms) <= 12:
        raise ValueError(f"max_atoms must lie in 1..12 (enumeration grows fast), got {max_atoms}")
    prim = primitive_structure(species, lattice, a)
    return list(enumerate_structures(prim, range(1, int(max_atoms) + 1), list(species)))


def published_mixing_energies(structures: list[Atoms]) -> np.ndarray:
    ce = published_cluster_expansion()
    energy = np.array([ce.predict(s) for s in structures])
    return formation_energies(np.array([au_fraction(s) for s in structures]), energy)


def _relax(atoms: Atoms, fmax: float = 1e-3) -> Atoms:
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=500)
    return atoms


def _check_emt(species: Sequence[str]) -> None:
    unsupported = [s for s in species if s not in EMT_SPECIES]
    if unsupported:
        raise ValueError(f"EMT has no parameters for {unsupported}; it supports {list(EMT_SPECIES)}")


def emt_pure_lattice_constants(species: Sequence[str] = SPECIES, a: float = LATTICE_CONSTANT) -> dict[str, float]:
    """EMT's equilibrium FCC lattice constants of the two metals (relaxed primitive cells)."""
    from ase.calculators.emt import EMT

    _check_emt(species)
    out = {}
    for sym in species:
        atoms = bulk(sym, "fcc", a=a)
        atoms.calc = EMT()
        _relax(atoms, fmax=1e-5)
        out[sym] = float((4 * atoms.get_volume()) ** (1 / 3))
    return out


def emt_energies(structures: list[Atoms], relax: bool = False, species: Sequence[str] = SPECIES,
                 a: float = LATTICE_CONSTANT) -> np.ndarray:
    """EMT energies per atom of FCC structures built with lattice constant ``a``; ideal structures
    are scaled to Vegard's-law lattice constants."""
    from ase.calculators.emt import EMT

    pure = emt_pure_lattice_constants(species, a)
    energies = []
    for ideal in tqdm(structures, desc="EMT energies", disable=None):
        atoms = ideal.copy()
        x = concentration(atoms, species)
        atoms.set_cell(atoms.cell * ((1 - x) * pure[species[0]] + x * pure[species[1]]) / a, scale_atoms=True)
        atoms.calc = EMT()
        if relax:
            _relax(atoms)
        energies.append(atoms.get_potential_energy() / len(atoms))
    return np.array(energies)


def database_structures(path: str | os.PathLike, species: Sequence[str] = SPECIES, lattice: str = "fcc",
                        a: float = LATTICE_CONSTANT) -> tuple[list[Atoms], np.ndarray]:
    """Structures of an ASE db mapped onto the ideal lattice, and their energies per atom.

    Raises an InputFileError when the file is missing or not an ASE database, or naming the first
    row without an energy, with a species outside ``species``, or that is not a (relaxed) supercell
    of ``lattice``.
    """
    from ase.db import connect
    from ase.io.formats import UnknownFileTypeError

    path = input_file(path, "ASE database")
    reference = primitive_structure(species, lattice, a)
    try:
        rows = list(connect(str(path)).select())
    except (sqlite3.Error, ValueError, UnknownFileTypeError) as exc:  # garbage, or a suffix ASE does not know
        raise InputFileError(f"{path} is not a readable ASE database: {exc}") from exc
    structures, energies = [], []
    for row in rows:
        name = f"database {path}: row {row.id} ({row.formula})"
        if row.get("energy") is None:
            raise InputFileError(f"{name} has no energy")
        atoms = row.toatoms()
        foreign = set(atoms.get_chemical_symbols()) - set(species)
        if foreign:
            raise InputFileError(f"{name} has species {sorted(foreign)} outside {list(species)}")
        not_lattice = f"{name} is not a supercell of the {lattice} lattice of {list(species)}"
        try:
            ideal, info = map_structure_to_reference(atoms, reference, suppress_warnings=True)
        except ValueError as err:
            raise InputFileError(f"{not_lattice}: {err}") from err
        mismatch = [w for w in info.warnings if w in _LATTICE_MISMATCH]
        if mismatch:
            raise InputFileError(f"{not_lattice}: icet's mapping warns {mismatch}")
        structures.append(ideal)
        energies.append(row.energy / len(atoms))
    if not structures:
        raise InputFileError(f"database {path} holds no structures")
    return structures, np.array(energies)


def fit_cluster_expansion(source: str, database: str | os.PathLike | None = None, relax: bool = False,
                          max_atoms: int = 8, cutoffs: Sequence[float] | None = None,
                          fit_method: str = "least-squares", seed: int = 42,
                          species: Sequence[str] = SPECIES, lattice: str = "fcc",
                          a: float = LATTICE_CONSTANT) -> FitResult:
    """Fit a CE of the binary ``species`` on ``lattice`` (cubic constant ``a`` in Å) to mixing
    energies per atom from ``source``; see the module docstring.

    ``cutoffs`` (Å) are icet's cluster-space cutoffs per order (pairs, triplets, ...); by default
    :func:`default_cutoffs`, the published CuAu model's for the defaults.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown energy source {source!r}; expected one of {SOURCES}")
    species = check_alloy(species, lattice, a)
    cutoffs = default_cutoffs(lattice, a) if cutoffs is None else [float(c) for c in cutoffs]
    if not cutoffs or not all(math.isfinite(c) and c > 0 for c in cutoffs):
        raise ValueError(f"cutoffs must be positive lengths in Å (pairs, triplets, ...), got {cutoffs}")
    if source == "published" and (species != SPECIES or lattice != "fcc" or not np.isclose(a, LATTICE_CONSTANT)):
        raise ValueError(f"source 'published' is the CuAu model on FCC with a = {LATTICE_CONSTANT} Å, got "
                         f"{list(species)} on {lattice} with a = {a}; use source 'database' for other alloys")
    if source == "emt":
        _check_emt(species)
        if lattice != "fcc":
            raise ValueError(f"source 'emt' fits FCC alloys only (EMT metals are FCC), got {lattice!r}")

    if source == "database":
        if database is None:
            raise LatthermError("source 'database' needs a database path (--database)")
        structures, energy = database_structures(database, species, lattice, a)
    else:
        structures = enumerated_structures(max_atoms, species, lattice, a)
    x = np.array([concentration(s, species) for s in structures])
    if source == "published":
        mixing = published_mixing_energies(structures)
    elif source == "emt":
        mixing = mixing_energies(x, emt_energies(structures, relax=relax, species=species, a=a), species)
    else:
        mixing = mixing_energies(x, energy, species)

    cs = ClusterSpace(primitive_structure(species, lattice, a), cutoffs=cutoffs, chemical_symbols=list(species))
    A = np.array([cs.get_cluster_vector(s) for s in structures])
    if len(structures) < len(cs):
        raise ValueError(f"{len(structures)} structures cannot determine {len(cs)} parameters")
    cve = CrossValidationEstimator((A, mixing), fit_method=fit_method, n_splits=min(10, len(structures)),
                                   seed=seed)
    cve.validate()
    cve.train()
    alloy = {"species": list(species), "lattice": lattice, "lattice_constant": float(a), "cutoffs": cutoffs}
    ce = ClusterExpansion(cs, cve.parameters, metadata={"source": source, "fit_method": fit_method, **alloy})
    predicted = A @ cve.parameters
    labels = [f"{s.get_chemical_formula()}#{k}" for k, s in enumerate(structures)]
    table = hull_table(x, formation_energies(x, predicted), labels)
    table["reference_mixing_energy_ev_per_atom"] = mixing
    metrics = {
        "source": source, "relax": bool(relax) if source == "emt" else None, "fit_method": fit_method, **alloy,
        "n_structures": len(structures), "n_parameters": len(cs),
        "n_nonzero_parameters": int(np.count_nonzero(cve.parameters)),
        "cv_rmse_mev_per_atom": 1e3 * float(cve.rmse_validation),
        "train_rmse_mev_per_atom": 1e3 * float(np.sqrt(np.mean((predicted - mixing) ** 2))),
    }
    return FitResult(ce=ce, metrics=metrics, table=table)
