"""The published DFT-fitted CuAu cluster expansion as an icet ``ClusterExpansion``.

The ECIs (``data/cuau_published/eci_clease.json`` next to this module, package data, from the MetaDNS repository, MIT
licence) are in CLEASE's naming for an FCC lattice with a = 3.8 Å and ``max_cluster_dia =
[6.0, 4.5, 4.5]``. The published hull energies are reproduced by CLEASE's *polynomial* basis,
whose binary point function is +1 for Au and -1 for Cu: the same as icet's for ['Cu', 'Au']
(icet orders species by atomic number, Cu = 0 -> -1, Au = 1 -> +1). Both define a correlation
function as the average over all clusters of the orbit of the product of point functions, so
no sign flip and no rescaling is needed: each CLEASE ECI is the icet parameter of the orbit
with the same geometry. CLEASE names clusters of one order by diameter, and the two 4-body
clusters of diameter a (square and 5-edge) in an order that differs from icet's (by radius),
which is why clusters are matched by geometry below, not by position. The test suite checks
the mapping against CLEASE's own correlation functions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase.build import bulk
from icet import ClusterExpansion, ClusterSpace

ECI_FILE = Path(__file__).resolve().parent / "data" / "cuau_published" / "eci_clease.json"
LATTICE_CONSTANT = 3.8
CUTOFFS = [6.0, 4.5, 4.5]
SPECIES = ("Cu", "Au")

# CLEASE cluster name -> sorted squared edge lengths in units of the nearest-neighbour
# distance squared (a^2 / 2): 1 = 1st, 2 = 2nd, 3 = 3rd, 4 = 4th neighbour.
CLEASE_GEOMETRY: dict[str, tuple[int, ...]] = {
    "c0": (),
    "c1_0": (),
    "c2_d0000_0_00": (1,),
    "c2_d0001_0_00": (2,),
    "c2_d0002_0_00": (3,),
    "c2_d0003_0_00": (4,),
    "c3_d0000_0_000": (1, 1, 1),  # nearest-neighbour triangle
    "c3_d0001_0_000": (1, 1, 2),
    "c4_d0000_0_0000": (1, 1, 1, 1, 1, 1),  # nearest-neighbour tetrahedron
    "c4_d0001_0_0000": (1, 1, 1, 1, 2, 2),  # square in a {100} plane
    "c4_d0002_0_0000": (1, 1, 1, 1, 1, 2),
}


def published_cluster_space() -> ClusterSpace:
    """icet's cluster space matching the published model: 11 parameters."""
    return ClusterSpace(bulk("Cu", "fcc", a=LATTICE_CONSTANT), cutoffs=CUTOFFS, chemical_symbols=list(SPECIES))


def read_clease_eci(path: str | os.PathLike = ECI_FILE) -> dict[str, float]:
    """The published ECIs (eV/atom) by CLEASE name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"published ECI file not found: {path}")
    eci = json.loads(path.read_text())
    if set(eci) != set(CLEASE_GEOMETRY):
        raise ValueError(f"{path} holds clusters {sorted(eci)}, expected {sorted(CLEASE_GEOMETRY)}")
    return {name: float(value) for name, value in eci.items()}


def clease_to_icet_index(cs: ClusterSpace) -> dict[str, int]:
    """Index into icet's parameter vector of every CLEASE cluster, matched by geometry."""
    nn_squared = LATTICE_CONSTANT**2 / 2
    by_geometry: dict[tuple[int, tuple[int, ...]], int] = {}
    for alpha, orbit in enumerate(cs.orbit_list.orbits):
        edges = np.asarray(orbit.representative_cluster.distances) ** 2 / nn_squared
        if not np.allclose(edges, np.round(edges), atol=1e-6):
            raise ValueError(f"icet orbit {alpha} has edges off the FCC neighbour shells: {edges}")
        by_geometry[(orbit.order, tuple(sorted(int(e) for e in np.round(edges))))] = 1 + alpha
    mapping = {"c0": 0}
    for name, edges in CLEASE_GEOMETRY.items():
        if name == "c0":
            continue
        order = int(name[1])
        if (order, edges) not in by_geometry:
            raise ValueError(f"no icet orbit of order {order} with edges {edges} for CLEASE cluster {name}")
        mapping[name] = by_geometry[(order, edges)]
    if sorted(mapping.values()) != list(range(len(cs))):
        raise ValueError("CLEASE clusters and icet orbits do not correspond one to one")
    return mapping


def published_cluster_expansion(path: str | os.PathLike = ECI_FILE) -> ClusterExpansion:
    """The published CuAu Hamiltonian as an icet cluster expansion (eV per site)."""
    eci = read_clease_eci(path)
    cs = published_cluster_space()
    params = np.zeros(len(cs))
    for name, index in clease_to_icet_index(cs).items():
        params[index] = eci[name]  # same basis, same normalisation: no sign or scale change
    return ClusterExpansion(cs, params, metadata={"source": "MetaDNS data/cuau/eci_clease.json (MIT)",
                                                  "basis": "CLEASE polynomial == icet binary"})


def write_published_ce(path: str | os.PathLike) -> Path:
    """Write the published model in lattherm's JSON format (:mod:`lattherm.ce.storage`), atomically."""
    from lattherm.ce.storage import write_cluster_expansion

    return write_cluster_expansion(published_cluster_expansion(), path)
