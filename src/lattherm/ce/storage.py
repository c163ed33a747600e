"""Pickle-free storage of cluster expansions: one JSON document per CE, checked when read.

icet's own ``.ce`` files are tar archives of pickles, and unpickling runs whatever code a file
names: a ``.ce`` from an untrusted source is a program. lattherm stores a cluster expansion as
plain JSON instead (format ``lattherm-ce-1``) holding what icet needs to rebuild it (primitive
structure, cutoffs, allowed species per site, tolerances, parameters, metadata) and reads it with
``json`` only. Rebuilding relies on icet numbering orbits as the writer's icet did, so the file
also holds the energies of fixed decorations of a supercell; the rebuilt CE must reproduce them to
1e-10 eV/atom, which catches both another orbit order and edited parameters. An icet ``.ce`` is
read only with ``allow_pickle=True`` (a file whose origin you trust), e.g. once to convert it:
``lattherm ce convert --trust-pickle model.ce --out model.json``.

:func:`cluster_expansion_hash` is a CE's identity (checkpoints record it), and
:func:`check_lattice` the one check that a CE belongs to the lattice a caller asks for.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tarfile
from pathlib import Path
from typing import Any

import icet
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols as ELEMENTS
from icet import ClusterExpansion, ClusterSpace

from lattherm.errors import LatthermError
from lattherm.io import write_text
from lattherm.lattices import Lattice

FORMAT = "lattherm-ce-1"
REFERENCE_TOLERANCE = 1e-10  # eV/atom
_REFERENCE_REPEAT = (4, 4, 4)
# lattice kind -> parent lattice; per parent: (nearest-neighbour distance)^3 / volume per site,
# and sites per cubic cell of side a
_PARENT = {"fcc": "fcc", "fcc_cubic": "fcc", "bcc": "bcc", "bcc_cubic": "bcc", "simple_cubic": "simple_cubic"}
_SHAPE = {"fcc": (math.sqrt(2), 4), "bcc": (3 * math.sqrt(3) / 4, 2), "simple_cubic": (1.0, 1)}


class ClusterExpansionError(LatthermError):
    """A cluster expansion that is missing, corrupt, untrusted, or does not fit the lattice or species."""


def write_cluster_expansion(ce: ClusterExpansion, path: str | os.PathLike) -> Path:
    """Write ``ce`` as a JSON document (atomically). A CE that would not read back identically
    (e.g. a pruned or merged cluster space, which the format does not describe) is refused."""
    path = Path(path)
    try:
        metadata = json.loads(json.dumps(ce.metadata, default=lambda v: v.tolist()))
    except (TypeError, AttributeError) as exc:
        raise ClusterExpansionError(f"cannot write {path}: the CE's metadata is not JSON data ({exc})") from None
    fields = _model_fields(ce)
    doc = {"format": FORMAT, **fields, "metadata": metadata, "reference": _reference(ce)}
    if _model_fields(_rebuild(doc, f"cluster expansion for {path}")) != fields:
        raise ClusterExpansionError(f"cannot write {path}: icet does not rebuild this CE from its primitive structure")
    write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def read_cluster_expansion(path: str | os.PathLike, allow_pickle: bool = False) -> ClusterExpansion:
    """Read a CE written by :func:`write_cluster_expansion`, every field checked and the reference
    energies reproduced. An icet ``.ce`` file is unpickled only with ``allow_pickle=True``: pass
    it for trusted files alone, since unpickling can run any code."""
    path = Path(path)
    if not path.is_file():
        raise ClusterExpansionError(f"cluster expansion file not found: {path}")
    if tarfile.is_tarfile(path):
        if not allow_pickle:
            raise ClusterExpansionError(
                f"{path} is an icet .ce file (a tar archive of pickles, which can run code when read); refused. "
                f"If you trust its origin, convert it once: lattherm ce convert --trust-pickle {path} --out "
                f"{path.with_suffix('.json')} (or opt in with --trust-pickle / ce_trust_pickle: true)")
        try:
            return ClusterExpansion.read(str(path))
        except Exception as exc:  # tarfile, pickle and icet raise errors of many types
            raise ClusterExpansionError(f"{path} is not a readable icet cluster expansion: {exc}") from None
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ClusterExpansionError(f"{path} is not a readable cluster expansion (JSON expected): {exc}") from None
    return _rebuild(doc, str(path))


def cluster_expansion_hash(ce: ClusterExpansion | str | os.PathLike) -> str:
    """sha256 of the canonical JSON of what defines the CE (structure, cutoffs, species,
    tolerances, parameters; not metadata), of a CE or of a file read with the default checks."""
    if not isinstance(ce, ClusterExpansion):
        ce = read_cluster_expansion(ce)
    canonical = json.dumps(_model_fields(ce), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parent_lattice(ce: ClusterExpansion) -> tuple[str | None, float]:
    """The CE's parent lattice ('fcc', 'bcc', 'simple_cubic'; None for any other) and cubic
    lattice constant (Å), from the volume per site and the nearest-neighbour distance."""
    prim = ce.get_cluster_space_copy().primitive_structure
    cell = np.asarray(prim.cell[:], dtype=float)
    volume = abs(np.linalg.det(cell)) / len(prim)
    if len(prim) == 1:
        lengths = np.linalg.norm(np.array(list(itertools.product(range(-2, 3), repeat=3))) @ cell, axis=1)
        ratio = lengths[lengths > 0].min() ** 3 / volume
        for parent, (shape, sites) in _SHAPE.items():
            if math.isclose(ratio, shape, rel_tol=1e-4):
                return parent, float((sites * volume) ** (1 / 3))
    return None, float(volume ** (1 / 3))


def ce_species(ce: ClusterExpansion) -> list[str]:
    """The alloy's two species, species 0 then 1 (concentration is the fraction of species 1): as
    the CE fit recorded them in the metadata, else icet's order (by atomic number)."""
    allowed = list(ce.get_cluster_space_copy().chemical_symbols[0])
    species = list(ce.metadata.get("species", allowed))
    if len(allowed) != 2 or sorted(species) != sorted(allowed):
        raise ClusterExpansionError(f"a binary CE is needed, got species {allowed} (metadata: {species})")
    return species


def check_lattice(ce: ClusterExpansion, lattice: Lattice, path: str | os.PathLike | None = None) -> None:
    """Raise unless ``lattice`` is a supercell of the CE's parent lattice: same kind (primitive
    or conventional cells), same lattice constant (relative 1e-6), every site at integer
    coordinates of the CE's primitive cell. ``path`` names the CE file in the error."""
    where = f"{path}: " if path is not None else ""
    if lattice.dimension != 3 or not all(lattice.atoms.pbc):
        raise ClusterExpansionError(f"{where}a bulk CE needs a periodic 3D lattice, got {lattice.kind!r}")
    parent, a = parent_lattice(ce)
    if parent != _PARENT.get(lattice.kind) or not math.isclose(a, lattice.lattice_constant, rel_tol=1e-6):
        found = (f"the {parent} lattice with lattice constant {a:.6g} Å" if parent
                 else "a lattice that is not FCC, BCC or simple cubic")
        raise ClusterExpansionError(
            f"{where}the cluster expansion is for {found}, not the {lattice.kind} lattice with lattice constant "
            f"{lattice.lattice_constant:.6g} Å asked for")
    primitive = ce.get_cluster_space_copy().primitive_structure
    prim_cell = np.asarray(primitive.cell[:], dtype=float)

    def integral(cart):  # fractional coordinates in the primitive cell are integers
        frac = np.linalg.solve(prim_cell.T, np.asarray(cart).T).T
        return np.abs(frac - np.round(frac)) < 1e-5

    offsets = (lattice.positions - lattice.positions[0])[:, None, :] - (primitive.positions - primitive.positions[0])
    on_sites = integral(offsets.reshape(-1, 3)).all(axis=1).reshape(offsets.shape[:2]).any(axis=1)
    if not (integral(lattice.cell).all() and on_sites.all()):
        raise ClusterExpansionError(
            f"{where}lattice {lattice.kind!r} (a = {lattice.lattice_constant}) is not a supercell of the CE's "
            "primitive structure (different orientation)")


def _model_fields(ce: ClusterExpansion) -> dict[str, Any]:
    """What defines the CE, as JSON data: icet rebuilds it from exactly these fields."""
    cs = ce.get_cluster_space_copy()
    prim = cs.primitive_structure
    return {
        "structure": {"cell": prim.cell[:].tolist(), "positions": prim.positions.tolist(),
                      "pbc": [bool(p) for p in prim.pbc], "symbols": prim.get_chemical_symbols()},
        "cutoffs": [float(c) for c in cs.cutoffs],
        "chemical_symbols": [list(s) for s in cs.chemical_symbols],
        "symprec": float(cs.symprec),
        "position_tolerance": float(cs.position_tolerance),
        "parameters": [float(p) for p in ce.parameters],
    }


def _reference(ce: ClusterExpansion) -> dict[str, Any]:
    """Energies (eV/atom) of fixed decorations of a supercell of the primitive structure: the
    pure crystals, two ordered layerings and three random alloys (fixed seed)."""
    cs = ce.get_cluster_space_copy()
    allowed = [list(s) for s in cs.chemical_symbols] * math.prod(_REFERENCE_REPEAT)
    # cell coordinates (i1, i2, i3) of every site, in ASE's repeat order
    i1, i2, i3 = np.indices(_REFERENCE_REPEAT).reshape(3, -1).repeat(len(cs.chemical_symbols), axis=1)
    rng = np.random.default_rng(0)
    patterns = [0 * i1, 0 * i1 + 1, i3 % 2, (i1 + i2) % 2] + [rng.integers(0, 6, len(i1)) for _ in range(3)]
    decorations = [[symbols[k % len(symbols)] for symbols, k in zip(allowed, pattern)] for pattern in patterns]
    supercell = cs.primitive_structure.repeat(_REFERENCE_REPEAT)
    return {"repeat": list(_REFERENCE_REPEAT), "decorations": decorations,
            "energies_per_site": [float(ce.predict(_decorated(supercell, d))) for d in decorations]}


def _decorated(structure: Atoms, symbols: list[str]) -> Atoms:
    atoms = structure.copy()
    atoms.set_chemical_symbols(symbols)
    return atoms


def _numbers(value: Any, shape: tuple[int, ...]) -> bool:
    """Whether ``value`` is nested lists of finite numbers (not booleans) of ``shape`` (-1: any length)."""
    if not isinstance(value, list):
        return False
    try:
        array = np.array(value, dtype=object)
    except ValueError:  # ragged
        return False
    return (array.shape == tuple(n if n >= 0 else m for n, m in zip(shape, array.shape))
            and array.ndim == len(shape)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in array.flat))


def _symbols(value: Any, n: int | None = None) -> bool:
    """Whether ``value`` is a non-empty list of chemical symbols (of length ``n`` if given)."""
    return (isinstance(value, list) and len(value) > 0 and (n is None or len(value) == n)
            and all(isinstance(s, str) and s in ELEMENTS[1:] for s in value))


def _positive(value: Any) -> bool:
    return _numbers([value], (1,)) and value > 0


def _rebuild(doc: Any, where: str) -> ClusterExpansion:
    """The CE of a parsed document, every field checked first and the reference energies after;
    ``where`` names the file in errors."""
    def field(name: str, ok, expected: str) -> Any:
        value = doc
        for key in name.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not ok(value):
            raise ClusterExpansionError(f"{where}: field {name!r} must be {expected}, got {value!r:.80}")
        return value

    if not isinstance(doc, dict):
        raise ClusterExpansionError(f"{where}: expected a JSON object (a lattherm cluster expansion), "
                                    f"got {type(doc).__name__}")
    field("format", lambda v: v == FORMAT, f"{FORMAT!r} (a lattherm cluster expansion)")
    symbols = field("structure.symbols", _symbols, "a non-empty list of chemical symbols")
    n = len(symbols)
    cell = field("structure.cell", lambda v: _numbers(v, (3, 3)), "3 x 3 numbers (Å)")
    positions = field("structure.positions", lambda v: _numbers(v, (n, 3)), f"{n} x 3 numbers (Å)")
    pbc = field("structure.pbc", lambda v: isinstance(v, list) and len(v) == 3
                and all(isinstance(p, bool) for p in v), "three booleans")
    cutoffs = field("cutoffs", lambda v: _numbers(v, (-1,)) and len(v) > 0 and min(v) > 0,
                    "a non-empty list of positive lengths (Å)")
    species = field("chemical_symbols", lambda v: isinstance(v, list) and len(v) == n
                    and all(_symbols(s) for s in v), f"{n} lists of chemical symbols, one per site")
    symprec = field("symprec", _positive, "a positive number")
    position_tolerance = field("position_tolerance", _positive, "a positive number")
    parameters = field("parameters", lambda v: _numbers(v, (-1,)), "a list of numbers (eV/atom)")
    metadata = field("metadata", lambda v: isinstance(v, dict), "a JSON object")
    repeat = field("reference.repeat", lambda v: isinstance(v, list) and len(v) == 3 and all(
        isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 8 for k in v), "three integers from 1 to 8")
    n_ref = n * math.prod(repeat)
    decorations = field("reference.decorations", lambda v: isinstance(v, list) and len(v) >= 3
                        and all(_symbols(d, n_ref) for d in v), f"at least 3 lists of {n_ref} chemical symbols")
    energies = field("reference.energies_per_site", lambda v: _numbers(v, (len(decorations),)),
                     f"{len(decorations)} numbers (eV/atom)")
    try:
        structure = Atoms(symbols, positions=positions, cell=cell, pbc=pbc)
        cs = ClusterSpace(structure, cutoffs, species, symprec=symprec, position_tolerance=position_tolerance)
        ce = ClusterExpansion(cs, np.array(parameters, dtype=float))
        supercell = structure.repeat(repeat)
        predicted = np.array([ce.predict(_decorated(supercell, d)) for d in decorations])
    except (ValueError, TypeError, RuntimeError) as exc:  # icet's own checks of consistent fields
        raise ClusterExpansionError(f"{where}: icet cannot rebuild the cluster expansion: {exc}") from None
    worst = float(np.max(np.abs(predicted - np.array(energies, dtype=float))))
    if not worst <= REFERENCE_TOLERANCE:
        raise ClusterExpansionError(
            f"{where}: the rebuilt cluster expansion misses the stored reference energies by up to {worst:.3g} "
            f"eV/atom (tolerance {REFERENCE_TOLERANCE:g}): the file was edited, or this icet ({icet.__version__}) "
            f"orders orbits differently from the one that wrote it ({metadata.get('icet_version', 'unknown')})")
    ce.metadata.clear()  # the stored provenance, not that of this reading
    ce.metadata.update(metadata)
    return ce
