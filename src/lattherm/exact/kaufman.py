"""Exact partition function of the finite periodic 2D Ising model (h = 0).

Kaufman (1949), in the form of Ferdinand & Fisher (1969) and Beale (1996), for an L1 x L2
torus with K = beta J:

    Z = 1/2 (2 sinh 2K)^{N/2} (Z1 + Z2 + Z3 + Z4),
    Z1 = prod_{r=0}^{L2-1} 2 cosh(L1 g_{2r+1} / 2),   Z2 = same with sinh,
    Z3 = prod_{r=0}^{L2-1} 2 cosh(L1 g_{2r} / 2),     Z4 = same with sinh,
    cosh g_l = cosh 2K coth 2K - cos(pi l / L2)   (l >= 1),   g_0 = 2K + ln tanh K.

g_0 changes sign at the critical point (negative above T_c), so Z4 is negative at high
temperature; every other g_l is positive, and the signed sum is always positive.

Why mpmath: at low temperature ln Z = 2KN + ln 2 + O(N e^{-8K}); the energy and heat capacity
live in that tiny correction, and in double precision it is lost to cancellations between the
O(e^{-2K}) parts of the individual g_l. Evaluating Z with mpmath at a working precision chosen
from K and L (no overflow, no cancellation) and differentiating with ``mpmath.diffs`` gives
ln Z, E and C correct to double precision at every beta and size.
"""

from __future__ import annotations

import math
import sys

import mpmath as mp
import numpy as np
import pandas as pd
from tqdm import tqdm

from lattherm.errors import LatthermError

BETA_C = math.log(1.0 + math.sqrt(2.0)) / 2.0
"""Critical inverse temperature of the infinite square lattice for J = 1."""


def _check_size(L1: int, L2: int) -> tuple[int, int]:
    for name, L in (("L1", L1), ("L2", L2)):
        if int(L) != L or L < 2:
            raise LatthermError(f"{name} must be an integer >= 2, got {L}")
    return int(L1), int(L2)


def _check_coupling(J: float) -> float:
    if not (np.isfinite(J) and J > 0):
        raise LatthermError(f"Kaufman's solution is for a ferromagnet: need finite J > 0, got {J}")
    return float(J)


def _log_z_mp(L1: int, L2: int, K):
    """ln Z at coupling K = beta J > 0 as an mpmath number at the current working precision."""
    a = mp.cosh(2 * K) * mp.coth(2 * K)
    gamma = [2 * K + mp.log(mp.tanh(K))] + [mp.acosh(a - mp.cospi(mp.mpf(l) / L2)) for l in range(1, 2 * L2)]
    half = [L1 * g / 2 for g in gamma]
    z1 = mp.fprod(2 * mp.cosh(x) for x in half[1::2])
    z2 = mp.fprod(2 * mp.sinh(x) for x in half[1::2])
    z3 = mp.fprod(2 * mp.cosh(x) for x in half[0::2])
    z4 = mp.fprod(2 * mp.sinh(x) for x in half[0::2])  # negative above T_c, where gamma_0 < 0
    return -mp.log(2) + mp.mpf(L1 * L2) / 2 * mp.log(2 * mp.sinh(2 * K)) + mp.log(z1 + z2 + z3 + z4)


def _working_digits(L1: int, L2: int, K: float) -> int:
    """Decimal digits that keep ln Z, E and C accurate to double precision.

    At low temperature C ~ N K^2 e^{-8K} is a tiny correction to ln Z ~ 2 K N, so 8K / ln 10
    digits cancel in its derivatives; near T_c the arccosh of 1 + O(1/L^2) loses 2 log10 L more.
    """
    lost = (8.0 * K + math.log1p(2.0 * K * L1 * L2)) / math.log(10.0) + 2.0 * math.log10(max(L1, L2))
    return 25 + int(math.ceil(lost))


def _as_betas(betas) -> np.ndarray:
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    if betas.ndim != 1 or not np.all(np.isfinite(betas)) or np.any(betas < 0):
        raise LatthermError(f"betas must be finite and >= 0, got {betas}")
    return betas


def ising_log_z(L1: int, L2: int, beta: float, J: float = 1.0) -> float:
    """ln Z of the periodic L1 x L2 Ising model (coupling J > 0, h = 0) at inverse temperature beta."""
    L1, L2 = _check_size(L1, L2)
    J = _check_coupling(J)
    (beta,) = _as_betas([beta])
    if beta == 0.0:
        return L1 * L2 * math.log(2.0)
    K = beta * J
    with mp.workdps(_working_digits(L1, L2, K)):
        return float(_log_z_mp(L1, L2, mp.mpf(K)))


def ising_thermo(L1: int, L2: int, betas, J: float = 1.0) -> pd.DataFrame:
    """Exact thermodynamics of the periodic L1 x L2 Ising model at each beta.

    Columns: beta, temperature, log_z, free_energy (F = -ln Z / beta), free_energy_per_site,
    energy (<E>), energy_per_site, heat_capacity (beta^2 Var E), heat_capacity_per_site; totals in
    units of J, temperature in J / k_B. beta = 0 is the exact limit ln Z = N ln 2, E = C = 0
    (F = -inf, T = inf).
    """
    L1, L2 = _check_size(L1, L2)
    J = _check_coupling(J)
    betas = _as_betas(betas)
    n = L1 * L2
    log_z, energy, heat = np.zeros(len(betas)), np.zeros(len(betas)), np.zeros(len(betas))
    for k, beta in enumerate(tqdm(betas, desc=f"Kaufman {L1}x{L2}", disable=not sys.stderr.isatty())):
        if beta == 0.0:
            log_z[k] = n * math.log(2.0)
            continue
        K = beta * J
        with mp.workdps(_working_digits(L1, L2, K)):
            f, df, d2f = mp.diffs(lambda k_: _log_z_mp(L1, L2, k_), mp.mpf(K), 2)
            # ln Z depends on beta only through K = beta J: d/dbeta = J d/dK.
            log_z[k] = float(f)
            energy[k] = float(-J * df)
            heat[k] = float(beta**2 * J**2 * d2f)
    with np.errstate(divide="ignore"):
        temperature = 1.0 / betas
        free = -log_z / betas
    return pd.DataFrame({
        "beta": betas,
        "temperature": temperature,
        "log_z": log_z,
        "free_energy": free,
        "free_energy_per_site": free / n,
        "energy": energy,
        "energy_per_site": energy / n,
        "heat_capacity": heat,
        "heat_capacity_per_site": heat / n,
    })
