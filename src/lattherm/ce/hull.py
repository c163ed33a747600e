"""Formation energies, convex hull and ground states of binary CE structures; hull plot."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from icet.tools import ConvexHull

from lattherm.io import save_figure


def formation_energies(x: np.ndarray, energy_per_atom: np.ndarray) -> np.ndarray:
    """E_f = E - (1 - x) E(x=0) - x E(x=1), per atom, relative to the lowest pure structures."""
    x = np.asarray(x, dtype=float)
    energy_per_atom = np.asarray(energy_per_atom, dtype=float)
    if x.shape != energy_per_atom.shape:
        raise ValueError(f"concentrations {x.shape} and energies {energy_per_atom.shape} differ in shape")
    ends = []
    for end in (0.0, 1.0):
        pure = np.isclose(x, end)
        if not pure.any():
            raise ValueError(f"no pure structure at concentration {end}: formation energies undefined")
        ends.append(energy_per_atom[pure].min())
    return energy_per_atom - (1 - x) * ends[0] - x * ends[1]


def hull_table(x: np.ndarray, formation: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Tidy table of all structures with their distance above the lower convex hull."""
    hull = ConvexHull(list(np.asarray(x, float)), list(np.asarray(formation, float)))
    above = np.asarray(hull.get_energy_above_convex_hull(list(x), list(formation)))
    df = pd.DataFrame({"structure": labels, "x_au": x, "formation_energy_ev_per_atom": formation,
                       "energy_above_hull_ev_per_atom": above})
    df["on_hull"] = np.isin(np.arange(len(df)), hull.structures)
    return df


def ground_states(table: pd.DataFrame) -> pd.DataFrame:
    """The hull vertices (lowest structure per hull concentration), sorted by concentration."""
    on = table[table["on_hull"]].sort_values(["x_au", "formation_energy_ev_per_atom"])
    return on.drop_duplicates("x_au").reset_index(drop=True)


def plot_hull(table: pd.DataFrame, path: str | os.PathLike, title: str = "") -> None:
    """Formation energies of all structures with the lower convex hull (meV/atom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = ground_states(table)
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ax.scatter(table["x_au"], 1e3 * table["formation_energy_ev_per_atom"], s=8, c="0.6", label="structures")
    ax.plot(gs["x_au"], 1e3 * gs["formation_energy_ev_per_atom"], "o-", c="C3", label="convex hull")
    ax.axhline(0, c="k", lw=0.5)
    ax.set_xlabel("Au fraction x")
    ax.set_ylabel("formation energy (meV/atom)")
    ax.set_title(title)
    ax.legend(frameon=False)
    save_figure(fig, path)
    plt.close(fig)
