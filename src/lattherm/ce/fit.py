"""Fit a binary CuAu cluster expansion with icet + trainstation from one of three sources.

- ``published``: energies of the published model (:mod:`lattherm.ce.published`) on icet's
  enumerated structures; the fit recovers it (a check of the whole route).
- ``emt``: ASE's EMT energies of the enumerated structures, either ideal (lattice constant by
  Vegard's law from the EMT-relaxed pure metals) or relaxed (cell and positions, BFGS).
- ``database``: a user's ASE database of Cu-Au FCC structures with energies.

The target is the mixing energy per atom, E/N - (1 - x) E_Cu - x E_Au, so a fitted CE gives
formation energies directly. Structures enter the cluster space on the ideal a = 3.8 Å lattice
of the published model (relaxed or scaled copies are used for the energies only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.build import bulk
from icet import ClusterExpansion, ClusterSpace
from icet.tools import enumerate_structures, map_structure_to_reference
from tqdm import tqdm
from trainstation import CrossValidationEstimator

from lattherm.ce.hull import formation_energies, ground_states, hull_table
from lattherm.ce.published import CUTOFFS, LATTICE_CONSTANT, SPECIES, published_cluster_expansion

SOURCES = ("published", "emt", "database")


@dataclass
class FitResult:
    """A fitted CE with its metrics and the hull of its training structures."""

    ce: ClusterExpansion
    metrics: dict
    table: pd.DataFrame  # every training structure: reference and CE mixing energies, hull data

    @property
    def ground_states(self) -> pd.DataFrame:
        return ground_states(self.table)


def au_fraction(atoms: Atoms) -> float:
    return atoms.get_chemical_symbols().count("Au") / len(atoms)


def enumerated_structures(max_atoms: int = 8) -> list[Atoms]:
    """All symmetry-distinct Cu-Au decorations of FCC supercells with up to ``max_atoms`` sites."""
    if not 1 <= int(max_atoms) <= 12:
        raise ValueError(f"max_atoms must lie in 1..12 (enumeration grows fast), got {max_atoms}")
    prim = bulk("Cu", "fcc", a=LATTICE_CONSTANT)
    return list(enumerate_structures(prim, range(1, int(max_atoms) + 1), list(SPECIES)))


def published_mixing_energies(structures: list[Atoms]) -> np.ndarray:
    ce = published_cluster_expansion()
    energy = np.array([ce.predict(s) for s in structures])
    return formation_energies(np.array([au_fraction(s) for s in structures]), energy)


def _relax(atoms: Atoms, fmax: float = 1e-3) -> Atoms:
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=500)
    return atoms


def emt_pure_lattice_constants() -> dict[str, float]:
    """EMT's equilibrium FCC lattice constants of Cu and Au (relaxed primitive cells)."""
    from ase.calculators.emt import EMT

    out = {}
    for sym in SPECIES:
        atoms = bulk(sym, "fcc", a=LATTICE_CONSTANT)
        atoms.calc = EMT()
        _relax(atoms, fmax=1e-5)
        out[sym] = float((4 * atoms.get_volume()) ** (1 / 3))
    return out


def emt_energies(structures: list[Atoms], relax: bool = False) -> np.ndarray:
    """EMT energies per atom; ideal structures are scaled to Vegard's-law lattice constants."""
    from ase.calculators.emt import EMT

    a = emt_pure_lattice_constants()
    energies = []
    for ideal in tqdm(structures, desc="EMT energies", disable=None):
        atoms = ideal.copy()
        x = au_fraction(atoms)
        atoms.set_cell(atoms.cell * ((1 - x) * a["Cu"] + x * a["Au"]) / LATTICE_CONSTANT, scale_atoms=True)
        atoms.calc = EMT()
        if relax:
            _relax(atoms)
        energies.append(atoms.get_potential_energy() / len(atoms))
    return np.array(energies)


def database_structures(path: str | os.PathLike) -> tuple[list[Atoms], np.ndarray]:
    """Structures mapped onto the ideal lattice and their energies per atom from an ASE db."""
    from ase.db import connect

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ASE database not found: {path}")
    reference = bulk("Cu", "fcc", a=LATTICE_CONSTANT)
    structures, energies = [], []
    for row in connect(str(path)).select():
        if row.get("energy") is None:
            raise ValueError(f"database {path}: row {row.id} ({row.formula}) has no energy")
        atoms = row.toatoms()
        if not set(atoms.get_chemical_symbols()) <= set(SPECIES):
            raise ValueError(f"database {path}: row {row.id} has species outside {SPECIES}")
        ideal, _ = map_structure_to_reference(atoms, reference, suppress_warnings=True)
        structures.append(ideal)
        energies.append(row.energy / len(atoms))
    if not structures:
        raise ValueError(f"database {path} holds no structures")
    return structures, np.array(energies)


def fit_cluster_expansion(source: str, database: str | os.PathLike | None = None, relax: bool = False,
                          max_atoms: int = 8, cutoffs: list[float] | None = None,
                          fit_method: str = "least-squares", seed: int = 42) -> FitResult:
    """Fit a CE to mixing energies per atom from ``source``; see the module docstring."""
    if source not in SOURCES:
        raise ValueError(f"unknown energy source {source!r}; expected one of {SOURCES}")
    if source == "database":
        if database is None:
            raise ValueError("source 'database' needs a database path")
        structures, energy = database_structures(database)
        x = np.array([au_fraction(s) for s in structures])
        mixing = formation_energies(x, energy)
    else:
        structures = enumerated_structures(max_atoms)
        x = np.array([au_fraction(s) for s in structures])
        if source == "published":
            mixing = published_mixing_energies(structures)
        else:
            mixing = formation_energies(x, emt_energies(structures, relax=relax))

    cs = ClusterSpace(bulk("Cu", "fcc", a=LATTICE_CONSTANT), cutoffs=cutoffs or CUTOFFS,
                      chemical_symbols=list(SPECIES))
    A = np.array([cs.get_cluster_vector(s) for s in structures])
    if len(structures) < len(cs):
        raise ValueError(f"{len(structures)} structures cannot determine {len(cs)} parameters")
    cve = CrossValidationEstimator((A, mixing), fit_method=fit_method, n_splits=min(10, len(structures)),
                                   seed=seed)
    cve.validate()
    cve.train()
    ce = ClusterExpansion(cs, cve.parameters, metadata={"source": source, "fit_method": fit_method})
    predicted = A @ cve.parameters
    labels = [f"{s.get_chemical_formula()}#{k}" for k, s in enumerate(structures)]
    table = hull_table(x, formation_energies(x, predicted), labels)
    table["reference_mixing_energy_ev_per_atom"] = mixing
    metrics = {
        "source": source, "relax": bool(relax) if source == "emt" else None, "fit_method": fit_method,
        "n_structures": len(structures), "n_parameters": len(cs),
        "n_nonzero_parameters": int(np.count_nonzero(cve.parameters)),
        "cv_rmse_mev_per_atom": 1e3 * float(cve.rmse_validation),
        "train_rmse_mev_per_atom": 1e3 * float(np.sqrt(np.mean((predicted - mixing) ** 2))),
    }
    return FitResult(ce=ce, metrics=metrics, table=table)
