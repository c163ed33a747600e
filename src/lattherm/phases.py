"""The phases of a binary FCC alloy: ordered prototypes, labels from order parameters, and
structure matching against the prototypes.

The ordered phases of CuAu-type alloys are patterns over the four simple-cubic sublattices of
FCC (``Lattice.fcc_sublattices``): L1_2 A3B puts species 1 on one sublattice (x = 1/4), L1_0 AB
on two (x = 1/2, layered), L1_2 AB3 on three (x = 3/4). A sample is labelled from the order
parameters of :mod:`lattherm.observables` (each 1 in its perfect phase and 0 when disordered);
the label of a low-temperature sample is confirmed independently by matching its structure
against the prototypes with pymatgen's ``StructureMatcher`` (lattice-, origin- and
variant-independent). Samples are exported as extended XYZ or CIF with ASE.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from lattherm.errors import LatthermError
from lattherm.lattices import Lattice, make_lattice

DISORDERED = "A1"
# name -> (composition, species-1 occupation of the four sublattices)
ORDERED = {
    "L1_2 A3B": (0.25, (1, 0, 0, 0)),
    "L1_0 AB": (0.5, (1, 1, 0, 0)),
    "L1_2 AB3": (0.75, (0, 1, 1, 1)),
}
ORDER_THRESHOLD = 0.5  # an order parameter above this marks the phase (perfect: 1, disordered: 0)


def ordered_configuration(lattice: Lattice, phase: str) -> np.ndarray:
    """The perfect ``phase`` on ``lattice`` (an FCC cell whose sublattices are periodic), 0/1."""
    if phase not in ORDERED:
        raise LatthermError(f"unknown ordered phase {phase!r}; one of {list(ORDERED)}")
    return np.asarray(ORDERED[phase][1])[lattice.fcc_sublattices()]


def ordered_phase_at(concentration: float) -> str | None:
    """The ordered prototype of composition ``concentration``, if there is one."""
    return next((name for name, (x, _) in ORDERED.items() if abs(x - concentration) < 1e-9), None)


def phase_label(order_l12: float, order_l10: float, concentration: float) -> str:
    """A1, L1_2 A3B / AB3 or L1_0 AB from the mean order parameters of a sample."""
    if order_l10 > ORDER_THRESHOLD and order_l10 >= order_l12:
        return "L1_0 AB"
    if order_l12 > ORDER_THRESHOLD:
        return "L1_2 A3B" if concentration < 0.5 else "L1_2 AB3"
    return DISORDERED


def matching_prototype(atoms, species: Sequence[str], ltol: float = 0.1, stol: float = 0.1,
                       angle_tol: float = 2.0) -> str | None:
    """The ordered prototype that pymatgen's ``StructureMatcher`` finds equivalent to the
    structure ``atoms`` (an ``ase.Atoms`` of ``species[0]`` and ``species[1]`` on an FCC cell);
    None when none is: a sample with antisite defects matches none, which is what "ordered"
    must mean here."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.ase import AseAtomsAdaptor

    symbols = atoms.get_chemical_symbols()
    concentration = symbols.count(species[1]) / len(symbols)
    if concentration in (0.0, 1.0):
        return None
    sample = AseAtomsAdaptor.get_structure(atoms)
    matcher = StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol, primitive_cell=True, scale=True,
                               attempt_supercell=True)
    a = (atoms.get_volume() / len(atoms) * 4) ** (1 / 3)  # the FCC cube holds four sites
    cube = make_lattice("fcc_cubic", [1, 1, 1], a=a)
    for name, (composition, _) in ORDERED.items():
        if abs(composition - concentration) > 1e-9:
            continue
        prototype = AseAtomsAdaptor.get_structure(cube.to_atoms(ordered_configuration(cube, name), species))
        if matcher.fit(sample, prototype):
            return name
    return None


def write_structures(path: str | os.PathLike, lattice: Lattice, configurations: np.ndarray, species: Sequence[str],
                     info: Sequence[dict] | None = None) -> None:
    """Configurations (M, N) as structures: extended XYZ (all frames, ``info`` per frame) or CIF."""
    from ase.io import write

    from lattherm.io import atomic_path

    path = os.fspath(path)
    if not path.endswith((".extxyz", ".cif")):
        raise LatthermError(f"structures are written as .extxyz or .cif, not {path!r}")
    frames = []
    configurations = np.atleast_2d(configurations)
    for k, x in enumerate(configurations):
        atoms = lattice.to_atoms(x, species)
        atoms.info.update({"species": ",".join(species), **(info[k] if info else {})})
        frames.append(atoms)
    with atomic_path(path) as tmp:
        write(tmp, frames, format="extxyz" if path.endswith(".extxyz") else "cif")
