"""The one place that turns a configuration dict into a lattice, a Hamiltonian and units.

A spec is a plain dict (from YAML), for example::

    {"model": "ising", "lattice": "square", "size": [16, 16], "J": 1.0}
    {"model": "cluster_expansion", "lattice": "fcc", "size": [2, 2, 4], "ce_file": "cuau.json",
     "species": ["Cu", "Au"], "ensemble": "canonical", "concentration": 0.5}

Keys: ``name``, ``model`` (ising | edwards_anderson | sherrington_kirkpatrick |
cluster_expansion), ``lattice`` (square | simple_cubic | fcc | fcc_cubic), ``size``, ``a``,
``J`` and ``h`` (ising), ``seed`` (edwards_anderson, sherrington_kirkpatrick), ``n_sites``
(sherrington_kirkpatrick), ``ce_file`` and ``ce_trust_pickle`` (cluster_expansion), ``species``,
``ensemble`` (semi_grand | canonical), ``dmu`` (semi_grand), ``concentration`` (canonical).

``ce_file`` is a CE in lattherm's JSON format (:mod:`lattherm.ce.storage`); an icet ``.ce`` file
(pickles, which can run code when read) is accepted only with ``ce_trust_pickle: true``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from lattherm import K_B_EV
from lattherm.errors import LatthermError
from lattherm.hamiltonians.base import Hamiltonian, SemiGrand
from lattherm.hamiltonians.ising import MAX_SK_SITES, EdwardsAnderson, Ising, SherringtonKirkpatrick
from lattherm.io import load_yaml
from lattherm.lattices import LATTICE_KINDS, MAX_SITES, Lattice, cell_sites, make_lattice

MODELS = ("ising", "edwards_anderson", "sherrington_kirkpatrick", "cluster_expansion")
ENSEMBLES = ("semi_grand", "canonical")
_COMMON_KEYS = {"name", "model", "lattice", "size", "a", "species", "ensemble", "dmu", "concentration"}
_MODEL_KEYS = {
    "ising": {"J", "h"},
    "edwards_anderson": {"seed"},
    "sherrington_kirkpatrick": {"seed", "n_sites"},
    "cluster_expansion": {"ce_file", "ce_trust_pickle"},
}
_SPIN_SPECIES = ["down", "up"]
class SystemSpecError(LatthermError):
    """A system spec with an unknown key, a missing field or a value out of range."""


@dataclass(eq=False)
class System:
    """A lattice model ready to sample: geometry, Hamiltonian, species and temperature units.

    ``hamiltonian`` already includes the semi-grand term -dmu sum s when dmu != 0.
    ``n_ones`` is the number of species-1 sites of the canonical ensemble (None when semi-grand).
    Temperatures are in units of J / k_B for spin models and in kelvin for cluster expansions.
    """

    name: str
    lattice: Lattice | None
    hamiltonian: Hamiltonian
    species: list[str]
    ensemble: str
    n_ones: int | None
    energy_unit: str
    spec: dict[str, Any]

    @property
    def n_sites(self) -> int:
        return self.hamiltonian.n_sites

    def beta(self, temperature: float) -> float:
        """Inverse temperature in inverse energy units of the Hamiltonian.

        ``inf`` is allowed and gives beta = 0, where thermodynamic integration starts.
        """
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


def _number(spec: dict, key: str, default: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SystemSpecError(f"{key!r} must be a finite number, got {value!r}")
    return float(value)


def _integer(spec: dict, key: str, default: int | None = None) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SystemSpecError(f"{key!r} must be an integer, got {value!r}")
    return value


def normalise_spec(spec: dict) -> dict:
    """Check a spec and fill in defaults; returns a new plain dict (YAML-serialisable)."""
    if not isinstance(spec, dict):
        raise SystemSpecError(f"a system spec must be a mapping, got {type(spec).__name__}")
    model = spec.get("model")
    if model not in MODELS:
        raise SystemSpecError(f"'model' must be one of {MODELS}, got {model!r}")
    unknown = set(spec) - _COMMON_KEYS - set().union(*_MODEL_KEYS.values())
    if unknown:
        raise SystemSpecError(f"unknown system keys {sorted(unknown)}")
    foreign = set(spec) - _COMMON_KEYS - _MODEL_KEYS[model]
    if foreign:
        raise SystemSpecError(f"keys {sorted(foreign)} do not apply to model {model!r}")

    out: dict[str, Any] = {"model": model}
    lattice = spec.get("lattice")
    if lattice is None and model != "sherrington_kirkpatrick":
        raise SystemSpecError(f"model {model!r} needs a 'lattice' (one of {LATTICE_KINDS})")
    if lattice is not None and lattice not in LATTICE_KINDS:
        raise SystemSpecError(f"'lattice' must be one of {LATTICE_KINDS}, got {lattice!r}")
    out["lattice"] = lattice
    if lattice is not None:
        cell = make_lattice(lattice, 1)  # one primitive cell: its dimension, cheaply
        size = spec.get("size")
        size = [size] * cell.dimension if isinstance(size, int) and not isinstance(size, bool) else size
        if not isinstance(size, (list, tuple)) or not size or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in size):
            raise SystemSpecError(f"'size' must be a list of positive integers, got {spec.get('size')!r}")
        if len(size) != cell.dimension:
            raise SystemSpecError(f"'size' of a {lattice} lattice needs {cell.dimension} integers, got {list(size)}")
        out["size"] = list(size)
        out["a"] = _number(spec, "a", 3.8 if model == "cluster_expansion" else 1.0)
        if out["a"] <= 0:
            raise SystemSpecError(f"'a' must be positive, got {out['a']}")
    elif "size" in spec or "a" in spec:
        raise SystemSpecError("'size' and 'a' need a 'lattice'")

    if model == "ising":
        out["J"] = _number(spec, "J", 1.0)
        out["h"] = _number(spec, "h", 0.0)
    if model in ("edwards_anderson", "sherrington_kirkpatrick"):
        out["seed"] = _integer(spec, "seed", 0)
    if model == "sherrington_kirkpatrick":
        if "n_sites" in spec:
            out["n_sites"] = _integer(spec, "n_sites")
            if out["n_sites"] < 2:
                raise SystemSpecError(f"'n_sites' must be >= 2, got {out['n_sites']}")
        elif lattice is None:
            raise SystemSpecError("model 'sherrington_kirkpatrick' needs 'n_sites' or a 'lattice'")
    n_sites = n_sites_of(out)
    if out.get("n_sites", n_sites) != n_sites:
        raise SystemSpecError(f"'n_sites' = {out['n_sites']} differs from the lattice's {n_sites} sites")
    if n_sites > MAX_SITES:
        where = f"'size' {out['size']} gives {n_sites} sites" if lattice is not None else f"'n_sites' = {n_sites}"
        raise SystemSpecError(f"{where}; a system may have at most {MAX_SITES} sites")
    if model == "sherrington_kirkpatrick" and n_sites > MAX_SK_SITES:
        raise SystemSpecError(f"'n_sites' = {n_sites}: the Sherrington-Kirkpatrick couplings are a dense N x N matrix "
                              f"({8 * n_sites ** 2 / 2 ** 30:.3g} GiB); at most {MAX_SK_SITES} sites")
    if model == "cluster_expansion":
        if not isinstance(spec.get("ce_file"), (str, os.PathLike)):
            raise SystemSpecError(f"model 'cluster_expansion' needs a 'ce_file' path, got {spec.get('ce_file')!r}")
        out["ce_file"] = str(spec["ce_file"])
        if "ce_trust_pickle" in spec:
            if not isinstance(spec["ce_trust_pickle"], bool):
                raise SystemSpecError(f"'ce_trust_pickle' must be true or false, got {spec['ce_trust_pickle']!r}")
            out["ce_trust_pickle"] = spec["ce_trust_pickle"]
        if "species" not in spec:
            raise SystemSpecError("model 'cluster_expansion' needs 'species', e.g. ['Cu', 'Au']")

    species = spec.get("species", _SPIN_SPECIES)
    if not isinstance(species, (list, tuple)) or len(species) != 2 or len(set(species)) != 2 or not all(
            isinstance(s, str) for s in species):
        raise SystemSpecError(f"'species' must be two distinct names, got {species!r}")
    out["species"] = list(species)

    ensemble = spec.get("ensemble", "semi_grand")
    if ensemble not in ENSEMBLES:
        raise SystemSpecError(f"'ensemble' must be one of {ENSEMBLES}, got {ensemble!r}")
    out["ensemble"] = ensemble
    if ensemble == "semi_grand":
        if "concentration" in spec:
            raise SystemSpecError(f"'concentration' = {spec['concentration']!r} applies to the canonical ensemble only")
        out["dmu"] = _number(spec, "dmu", 0.0)
    else:
        if "dmu" in spec:
            raise SystemSpecError(f"'dmu' = {spec['dmu']!r} applies to the semi_grand ensemble only")
        if "concentration" not in spec:
            raise SystemSpecError("the canonical ensemble needs a 'concentration' (fraction of species 1)")
        out["concentration"] = _number(spec, "concentration", 0.0)
        if not 0.0 <= out["concentration"] <= 1.0:
            raise SystemSpecError(f"'concentration' must lie in [0, 1], got {out['concentration']}")
        count = out["concentration"] * n_sites
        if abs(count - round(count)) > 1e-9:
            raise SystemSpecError(f"'concentration' = {out['concentration']} gives {count:g} species-1 sites on "
                                  f"{n_sites} sites; it must give an integer count")
    if "name" in spec and not isinstance(spec["name"], str):
        raise SystemSpecError(f"'name' must be a string, got {spec['name']!r}")
    out["name"] = spec.get("name") or _default_name(out)
    return out


def n_sites_of(spec: dict) -> int:
    """Sites of the cell a normalised spec describes, without building it."""
    if spec["lattice"] is None:
        return spec["n_sites"]
    return cell_sites(spec["lattice"], spec["size"])


def _default_name(spec: dict) -> str:
    parts = [spec["model"]]
    if spec["lattice"] is not None:
        parts += [spec["lattice"], "x".join(str(n) for n in spec["size"])]
    else:
        parts.append(f"n{spec['n_sites']}")
    if spec["ensemble"] == "canonical":
        parts.append(f"c{spec['concentration']:g}")
    return "_".join(parts)


def build_system(spec: dict) -> System:
    """Build a :class:`System` from a spec dict (see the module docstring for the keys)."""
    spec = normalise_spec(spec)
    model = spec["model"]
    lattice = make_lattice(spec["lattice"], spec["size"], spec["a"]) if spec["lattice"] is not None else None
    if model == "ising":
        hamiltonian: Hamiltonian = Ising(lattice, J=spec["J"], h=spec["h"])
    elif model == "edwards_anderson":
        hamiltonian = EdwardsAnderson(lattice, seed=spec["seed"])
    elif model == "sherrington_kirkpatrick":
        n_sites = spec.get("n_sites", lattice.n_sites if lattice is not None else None)
        hamiltonian = SherringtonKirkpatrick(n_sites, seed=spec["seed"])
    else:
        # Imported here so that spin-model users do not pay for icet.
        from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian

        hamiltonian = ClusterExpansionHamiltonian.from_file(spec["ce_file"], lattice, spec["species"],
                                                            allow_pickle=spec.get("ce_trust_pickle", False))

    n_ones = None
    if spec["ensemble"] == "canonical":
        n_ones = round(spec["concentration"] * hamiltonian.n_sites)  # an integer count: see normalise_spec
    elif spec["dmu"] != 0.0:
        hamiltonian = SemiGrand(hamiltonian, spec["dmu"])

    return System(
        name=spec["name"],
        lattice=lattice,
        hamiltonian=hamiltonian,
        species=spec["species"],
        ensemble=spec["ensemble"],
        n_ones=n_ones,
        energy_unit="eV" if model == "cluster_expansion" else "J",
        spec=spec,
    )


def load_spec(path: str | os.PathLike) -> dict:
    """The checked spec of a system YAML file (cheap: builds nothing)."""
    return normalise_spec(load_yaml(path, mapping=True))


def load_system(path: str | os.PathLike) -> System:
    """Build the :class:`System` described by a YAML file."""
    return build_system(load_spec(path))
