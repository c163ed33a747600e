"""Observables of binary lattice configurations: the one home of every formula.

The torch MCMC (:mod:`lattherm.mcmc.samplers`), the mchammer post-processing
(:mod:`lattherm.mcmc.mchammer_runs`) and the neural estimators (:mod:`lattherm.sampling`) all
build their per-configuration series from :func:`standard_observables`, so each quantity has
one formula and one column name in every table:

=====================  ==============================================================  ==========
column                 quantity                                                         lattices
=====================  ==============================================================  ==========
``magnetization``      m = mean_i s_i, s = 2x - 1                                       all
``abs_magnetization``  |m|                                                              all
``composition``        species-1 fraction mean_i x_i = (1 + m) / 2                      all
``c_sub0`` .. 3        species-1 fraction on each simple-cubic sublattice of FCC        FCC
``order_parameter``    generic sublattice order eta (1 for perfect L1_0 and L1_2)       FCC
``order_l12``          L1_2 order parameter (1 for perfect L1_2, 0 for L1_0)            FCC
``order_l10``          L1_0 order parameter (1 for perfect L1_0, 0 for L1_2)            FCC
``sro_1``              first-shell Warren-Cowley alpha_1 of the unlike (0-1) pair       FCC, BCC
=====================  ==============================================================  ==========

Configurations are integer species indices x in {0, 1}, a torch tensor (B, N) (a single
configuration (N,) is taken as B = 1); every observable returns a float64 tensor (B,).

FCC sublattice order. With c_k the species-1 fraction on sublattice k (``Lattice.fcc_sublattices``:
sites (0,0,0), (0,1/2,1/2), (1/2,0,1/2), (1/2,1/2,0) of the cubic cell) and c = mean_k c_k the
composition, the three X-point concentration waves are

    eta_x = (c_0 + c_1 - c_2 - c_3) / 4,  eta_y = (c_0 - c_1 + c_2 - c_3) / 4,
    eta_z = (c_0 - c_1 - c_2 + c_3) / 4,

so that c_k = c + sum_i eta_i p_i(k) with the sign patterns p(k) above. L1_0 layered along
direction i is one non-zero wave (|eta_i| = 1/2, the others 0); L1_2 (A3B or AB3, any of the four
choices of the minority sublattice) has three waves of equal magnitude 1/4. With the
magnitudes sorted, a_1 >= a_2 >= a_3:

- ``order_parameter`` eta = sqrt(sum_k (c_k - c)^2 / (4 c (1 - c))) = sqrt(sum_i eta_i^2 / (c (1 - c)))
  (0 at c = 0 or 1). Since sum_k c_k^2 <= sum_k c_k = 4c, eta <= 1, with equality exactly
  when every sublattice is pure: perfect L1_2 (x = 1/4 and 3/4) and L1_0 (x = 1/2) give 1.
- ``order_l10`` = 2 (a_1 - a_2): perfect L1_0 (any of the 3 layering directions, either species
  on either pair) 1; perfect L1_2 (x = 1/4, 3/4) 0.
- ``order_l12`` = 4 a_3: perfect L1_2 (any of the 4 variants, x = 1/4 or 3/4) 1; perfect L1_0 0.

All three are 0 in the disordered state (all c_k equal) and lie in [0, 1].

Warren-Cowley (first shell, unlike pair): alpha_1 = 1 - P(B | A) / c_B, which for a binary is

    alpha_1 = 1 - p_AB / (2 c (1 - c)) = (<s_i s_j>_nn - m^2) / (1 - m^2),

with p_AB the fraction of unlike first-neighbour bonds and <s_i s_j>_nn the mean over the
lattice's first-shell bonds (``Lattice.neighbour_pairs(1)``, periodic images counted as the
lattice sum does). Negative when unlike pairs are favoured (perfect L1_0: -1/3, L1_2: -1/3),
0 on average for a random alloy (an infinite one; a fixed-composition cell of N sites averages
-1/(N - 1)), NaN when one species is absent. This is mchammer's ``ShortRangeOrderObserver``
``sro_A_B_1`` on a one-sublattice lattice (same sign and normalisation; checked in the tests).

Replica overlap (spin glasses): q = mean_i s_i^a s_i^b of two replicas, :func:`overlap`; link
overlap q_l = mean_b s_i^a s_j^a s_i^b s_j^b over the bonds b = (i, j), :func:`link_overlap`.

Heat capacity: C = k_B beta^2 var(E) from equilibrium energy samples, :func:`heat_capacity`
(error analysis, blocking and jackknife, stays in :mod:`lattherm.mcmc.analysis`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

Observable = Callable[[Tensor], Tensor]
"""Maps configurations (B, N) to one float64 number per configuration, (B,)."""

FCC_KINDS = ("fcc", "fcc_cubic")
ALLOY_KINDS = ("fcc", "fcc_cubic", "bcc", "bcc_cubic")
"""Lattices whose tables get Warren-Cowley parameters by default (binary-alloy lattices)."""

# sign of sublattice k in the three X-point concentration waves (columns x, y, z)
_WAVES = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]],
                      dtype=torch.float64)


def _as_batch(x: Tensor) -> Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"configurations must have shape (B, N), got {tuple(x.shape)}")
    return x


# -- site averages ------------------------------------------------------------------------------
def spins(x: Tensor) -> Tensor:
    """s = 2x - 1 as float64, shape (B, N)."""
    return 2.0 * _as_batch(x).to(torch.float64) - 1.0


def magnetization(x: Tensor) -> Tensor:
    """m = mean_i s_i; perfect L1_0 0, L1_2 at x = 1/4: -1/2, at x = 3/4: +1/2."""
    return spins(x).mean(dim=1)


def abs_magnetization(x: Tensor) -> Tensor:
    """|m| = |mean_i s_i|."""
    return magnetization(x).abs()


def composition(x: Tensor) -> Tensor:
    """Species-1 fraction mean_i x_i = (1 + m) / 2."""
    return _as_batch(x).to(torch.float64).mean(dim=1)


def overlap(x_a: Tensor, x_b: Tensor) -> Tensor:
    """Replica overlap q = mean_i s_i^a s_i^b of two batches of configurations, row by row (B,):
    1 for identical replicas, -1 for spin-flipped ones, about 0 for unrelated random ones."""
    s_a, s_b = spins(x_a), spins(x_b)
    if s_a.shape != s_b.shape:
        raise ValueError(f"replicas must have the same shape, got {tuple(s_a.shape)} and {tuple(s_b.shape)}")
    return (s_a * s_b.to(s_a.device)).mean(dim=1)


def link_overlap(x_a: Tensor, x_b: Tensor, bonds=None) -> Tensor:
    """Link overlap q_l = (1/N_b) sum_b s_i^a s_j^a s_i^b s_j^b of two batches of replicas over the
    bonds ``bonds`` (M, 2), row by row (B,); ``bonds`` None: all N (N - 1) / 2 pairs i < j (SK),
    which is (N q^2 - 1) / (N - 1) of the site overlap q. 1 for identical or spin-flipped
    replicas; its mean over two independent replicas is mean_b <s_i s_j>^2."""
    if bonds is None:
        n = _as_batch(x_a).shape[1]
        return (n * overlap(x_a, x_b) ** 2 - 1.0) / (n - 1)
    s_a, s_b = spins(x_a), spins(x_b)
    if s_a.shape != s_b.shape:
        raise ValueError(f"replicas must have the same shape, got {tuple(s_a.shape)} and {tuple(s_b.shape)}")
    t = s_a * s_b.to(s_a.device)  # per site s^a s^b: the bond term is t_i t_j
    bonds = torch.as_tensor(bonds, dtype=torch.int64, device=t.device)
    return (t[:, bonds[:, 0]] * t[:, bonds[:, 1]]).mean(dim=1)


# -- FCC sublattice order -----------------------------------------------------------------------
def sublattice_matrix(sublattices) -> Tensor:
    """(N, K) float64 averaging matrix: column k is 1 / N_k on the sites of sublattice k."""
    sub = torch.as_tensor(sublattices, dtype=torch.int64).cpu()
    onehot = torch.nn.functional.one_hot(sub, int(sub.max()) + 1).to(torch.float64)
    counts = onehot.sum(dim=0)
    if torch.any(counts == 0):
        raise ValueError(f"every sublattice needs at least one site, got counts {counts.tolist()}")
    return onehot / counts


def sublattice_concentrations(x: Tensor, sublattices) -> Tensor:
    """Species-1 fraction on each sublattice, (B, K); ``sublattices`` is the (N,) index array
    (e.g. ``lattice.fcc_sublattices()``) or a matrix from :func:`sublattice_matrix`."""
    x = _as_batch(x)
    matrix = torch.as_tensor(sublattices)
    if matrix.ndim == 1:
        matrix = sublattice_matrix(matrix)
    return x.to(torch.float64) @ matrix.to(device=x.device, dtype=torch.float64)


def _check_fcc(c_sub: Tensor) -> Tensor:
    c_sub = torch.as_tensor(c_sub, dtype=torch.float64)
    if c_sub.ndim == 1:
        c_sub = c_sub[None]
    if c_sub.ndim != 2 or c_sub.shape[1] != 4:
        raise ValueError(f"FCC order parameters need the four sublattice concentrations (B, 4), got {tuple(c_sub.shape)}")
    return c_sub


def concentration_waves(c_sub: Tensor) -> Tensor:
    """X-point concentration-wave amplitudes (eta_x, eta_y, eta_z) from (B, 4) sublattice
    concentrations: c_k = c + sum_i eta_i p_i(k) (see the module docstring), shape (B, 3)."""
    c_sub = _check_fcc(c_sub)
    return c_sub @ _WAVES.to(c_sub.device) / 4.0


def order_parameter(c_sub: Tensor) -> Tensor:
    """Generic FCC sublattice order eta = sqrt(sum_k (c_k - c)^2 / (4 c (1 - c))), c = mean_k c_k.

    Perfect L1_2 at x = 1/4 and 3/4: 1; perfect L1_0 at x = 1/2: 1; disordered (all c_k
    equal): 0; 0 for a pure element (c = 0 or 1). Bounded by 1 since sum_k c_k^2 <= 4c."""
    c_sub = _check_fcc(c_sub)
    c = c_sub.mean(dim=1, keepdim=True)
    denom = (4.0 * c * (1.0 - c)).squeeze(1)
    spread = ((c_sub - c) ** 2).sum(dim=1)
    eta = (spread / denom.clamp_min(1e-300)).sqrt().clamp_max(1.0)  # clamp: rounding only
    return torch.where(denom > 0, eta, torch.zeros_like(spread))


def order_l10(c_sub: Tensor) -> Tensor:
    """L1_0 order 2 (a_1 - a_2), a_1 >= a_2 >= a_3 the sorted |concentration waves|.

    Perfect L1_0 (x = 1/2, any of the three layering directions, either species on either
    pair of sublattices): 1; perfect L1_2 (x = 1/4 and 3/4): 0; disordered: 0; in [0, 1]."""
    a = concentration_waves(c_sub).abs().sort(dim=1, descending=True).values
    return 2.0 * (a[:, 0] - a[:, 1])


def order_l12(c_sub: Tensor) -> Tensor:
    """L1_2 order 4 a_3, a_3 the smallest |concentration wave|.

    Perfect L1_2 (A3B at x = 1/4 or AB3 at x = 3/4, any of the four choices of the minority
    sublattice): 1; perfect L1_0 (x = 1/2): 0; disordered: 0; in [0, 1]. Partial L1_2 order
    c_k = (c + 3t, c - t, c - t, c - t) gives 4t."""
    a = concentration_waves(c_sub).abs().min(dim=1).values
    return 4.0 * a


# -- short-range order --------------------------------------------------------------------------
def warren_cowley(x: Tensor, pairs) -> Tensor:
    """Warren-Cowley alpha of the unlike pair over the bonds ``pairs`` (M, 2) (e.g.
    ``lattice.neighbour_pairs(1)``): (<s_i s_j>_bonds - m^2) / (1 - m^2) = 1 - p_AB / (2c(1-c)),
    NaN where one species is absent. Perfect L1_0 and L1_2 first shell: -1/3."""
    s = spins(x)
    pairs = torch.as_tensor(pairs, dtype=torch.int64, device=s.device)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise ValueError(f"pairs must have shape (M, 2) with M >= 1, got {tuple(pairs.shape)}")
    bond = (s[:, pairs[:, 0]] * s[:, pairs[:, 1]]).mean(dim=1)
    c = (s.mean(dim=1) + 1.0) / 2.0
    denom = 4.0 * c * (1.0 - c)  # = 1 - m^2, exactly 0 for a pure configuration
    m2 = 1.0 - denom
    alpha = (bond - m2) / denom.clamp_min(1e-300)
    return torch.where(denom > 0, alpha, torch.full_like(alpha, float("nan")))


# -- energies -----------------------------------------------------------------------------------
def heat_capacity(energy, beta: float, boltzmann_constant: float = 1.0) -> float:
    """C = k_B beta^2 var(E) (population variance over all samples given) from equilibrium
    energies; in units of k_B by default, eV/K with ``boltzmann_constant = K_B_EV`` and beta
    in 1/eV. Totals in, totals out (divide by N for ``heat_capacity_per_site``)."""
    return float(boltzmann_constant * beta**2 * np.var(np.asarray(energy, dtype=np.float64)))


# -- the standard set -------------------------------------------------------------------------
def sro_shells_default(lattice) -> int:
    """Number of Warren-Cowley shells tabulated by default: 1 on alloy lattices, else 0."""
    return 1 if lattice is not None and lattice.kind in ALLOY_KINDS else 0


def standard_observables(lattice=None, sro_shells: int | None = None) -> dict[str, Observable]:
    """The observables every table records, name -> function (B, N) -> (B,) float64.

    Always ``magnetization``, ``abs_magnetization``, ``composition``; on FCC lattices
    ``c_sub0`` .. ``c_sub3``, ``order_parameter``, ``order_l12``, ``order_l10``; and Warren-Cowley
    ``sro_1`` .. ``sro_{sro_shells}`` of the unlike pair (default: first shell on FCC and BCC,
    none on spin lattices). An FCC cell whose four sublattices are not periodic raises
    ``Lattice.fcc_sublattices``' error.
    """
    obs: dict[str, Observable] = {
        "magnetization": magnetization,
        "abs_magnetization": abs_magnetization,
        "composition": composition,
    }
    if lattice is None:
        return obs
    if lattice.kind in FCC_KINDS:
        matrix = sublattice_matrix(lattice.fcc_sublattices())

        def c_sub(k: int) -> Observable:
            return lambda x: sublattice_concentrations(x, matrix)[:, k]

        for k in range(4):
            obs[f"c_sub{k}"] = c_sub(k)
        for name, fn in (("order_parameter", order_parameter), ("order_l12", order_l12), ("order_l10", order_l10)):
            obs[name] = (lambda f: lambda x: f(sublattice_concentrations(x, matrix)))(fn)
    n_shells = sro_shells_default(lattice) if sro_shells is None else int(sro_shells)
    for shell in range(1, n_shells + 1):
        pairs = torch.as_tensor(lattice.neighbour_pairs(shell))
        obs[f"sro_{shell}"] = (lambda p: lambda x: warren_cowley(x, p))(pairs)
    return obs


def evaluate_observables(observables: dict[str, Observable], x: Tensor, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Every observable on a stack of configurations (T, N), in batches, as float64 numpy (T,)."""
    x = _as_batch(x)
    out: dict[str, list[np.ndarray]] = {name: [] for name in observables}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            for name, fn in observables.items():
                out[name].append(fn(chunk).to(torch.float64).cpu().numpy())
    return {name: (np.concatenate(v) if v else np.zeros(0)) for name, v in out.items()}
