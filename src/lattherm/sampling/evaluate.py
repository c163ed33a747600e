"""Thermodynamic estimates of one system at one temperature from a trained neural sampler,
and the conditioning input of conditional models.

A conditional model (``n_cond > 0``) reads a (B, n_cond) float32 ``cond`` whose columns are
the :class:`Conditioning`'s variables, always in the order beta, dmu, concentration (those in
use): beta / beta_ref, dmu / dmu_scale and n_ones / N. Training draws these per batch
(:mod:`lattherm.training.variational`); evaluation takes them from the system: its
temperature, its semi-grand ``dmu`` and its canonical ``n_ones``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lattherm.models.physics import set_physics_beta
from lattherm.models.symmetric import LatticeSymmetric, Z2Symmetric, check_lattice_symmetry, with_symmetries
from lattherm.observables import heat_capacity, standard_observables
from lattherm.sampling.estimators import (ess_per_sample, free_energy_is, importance_mean, log_weights, neural_mcmc,
                                         pareto_k)

COND_VARIABLES = ("beta", "dmu", "concentration")


@dataclass
class Conditioning:
    """What a conditional model's ``cond`` columns hold: ``variables`` (a sub-sequence of
    :data:`COND_VARIABLES`) and ``scales`` dividing them (``beta``: the largest trained beta,
    ``dmu``: the largest trained |dmu|; concentration n_ones / N is used as it is)."""

    variables: tuple[str, ...]
    scales: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        variables = tuple(self.variables)
        if not variables or variables != tuple(v for v in COND_VARIABLES if v in variables):
            raise ValueError(f"conditioning variables must be a non-empty sub-sequence of {COND_VARIABLES}, "
                             f"got {variables}")
        scaled = {v for v in variables if v != "concentration"}
        if set(self.scales) != scaled or not all(self.scales[v] > 0 for v in scaled):
            raise ValueError(f"conditioning on {variables} needs positive scales for {sorted(scaled)}, "
                             f"got {self.scales}")
        self.variables = variables
        self.scales = {v: float(s) for v, s in self.scales.items()}

    def features(self, batch: int, beta: float, dmu: float | None = None, n_ones: int | None = None,
                 n_sites: int | None = None) -> torch.Tensor:
        """The (batch, n_cond) float32 cond input at inverse temperature ``beta``, chemical
        potential difference ``dmu`` (semi-grand) and ``n_ones`` of ``n_sites`` (canonical)."""
        values = {"beta": beta, "dmu": dmu,
                  "concentration": None if n_ones is None or n_sites is None else n_ones / n_sites}
        missing = [v for v in self.variables if values[v] is None]
        if missing:
            raise ValueError(f"the model is conditioned on {list(self.variables)} but got no {missing} "
                             "(dmu needs a semi-grand system, concentration a canonical one)")
        row = [float(values[v]) / self.scales.get(v, 1.0) for v in self.variables]
        return torch.tensor(row, dtype=torch.float32).repeat(batch, 1)

    def to_dict(self) -> dict:
        """Plain types, as saved in checkpoints."""
        return {"variables": list(self.variables), "scales": dict(self.scales)}

    @classmethod
    def from_dict(cls, d: dict) -> "Conditioning":
        return cls(tuple(d["variables"]), dict(d["scales"]))


def system_cond(model, system, temperature: float, conditioning: Conditioning | None, batch: int):
    """The model's cond input for ``system`` at ``temperature`` (None for an unconditional model)."""
    n_cond = model.hyperparameters().get("n_cond", 0)
    variables = [] if conditioning is None else list(conditioning.variables)
    if len(variables) != n_cond:
        raise ValueError(f"the model has n_cond = {n_cond} but the conditioning variables are {variables} "
                         "(pass the conditioning saved with its checkpoint)")
    if conditioning is None:
        return None
    dmu = system.dmu
    return conditioning.features(batch, system.beta(temperature), dmu=dmu, n_ones=system.n_ones,
                                 n_sites=system.n_sites)


@torch.no_grad()
def importance_estimates(model, system, temperature: float, n_samples: int = 10000,
                         conditioning: Conditioning | None = None, batch_size: int = 4096,
                         generator: torch.Generator | None = None) -> dict:
    """Importance-sampled F_IS with its error, the ESS, the weights' Pareto k-hat
    (:func:`~lattherm.sampling.estimators.pareto_k`), the importance-sampled energy ``energy_is``
    (:func:`~lattherm.sampling.estimators.importance_mean`) and the variational F_q of ``model`` on
    ``system`` at one temperature, from ``n_samples`` samples (drawn with ``generator``), as one
    flat dict under the reference tables' column names (totals and ``*_per_site`` copies). A
    conditional model needs the ``conditioning`` saved with its checkpoint; a ``physics_logits``
    model its Hamiltonian attached (its beta is set here)."""
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    device = next(model.parameters()).device
    hamiltonian = system.hamiltonian.to(device)
    beta = system.beta(temperature)
    set_physics_beta(model, beta)  # physics_logits at this temperature (unless beta comes from cond)
    log_w_parts, energy_parts = [], []
    for start in range(0, n_samples, batch_size):
        n = min(batch_size, n_samples - start)
        cond = system_cond(model, system, temperature, conditioning, n)
        x, log_q = model.sample(n, cond=None if cond is None else cond.to(device), n_ones=system.n_ones,
                                generator=generator)
        energy_parts.append(hamiltonian.energy(x).to(torch.float64))
        log_w_parts.append(log_weights(energy_parts[-1], log_q, beta))
    log_w, energy = torch.cat(log_w_parts), torch.cat(energy_parts)
    f_is, f_is_err = free_energy_is(log_w, beta)
    e_is, e_is_err = importance_mean(log_w, energy)
    reward = -log_w / beta  # E + ln q / beta
    n_sites = system.n_sites
    return {
        "temperature": float(temperature), "beta": beta, "n_sites": n_sites, "n_samples": n_samples,
        "free_energy": f_is, "free_energy_err": f_is_err,
        "free_energy_per_site": f_is / n_sites, "free_energy_per_site_err": f_is_err / n_sites,
        "ess": ess_per_sample(log_w), "pareto_k": pareto_k(log_w),
        "energy_is": e_is, "energy_is_err": e_is_err,
        "energy_is_per_site": e_is / n_sites, "energy_is_per_site_err": e_is_err / n_sites,
        "variational_free_energy": reward.mean().item(),
        "variational_free_energy_err": reward.std().item() / math.sqrt(n_samples),
    }


@torch.no_grad()
def evaluate(model, system, temperature: float, n_samples: int = 10000, conditioning: Conditioning | None = None,
             mcmc_chains: int = 64, mcmc_steps: int = 200, burn_in: int | None = None, batch_size: int = 4096,
             seed: int = 0, z2_symmetric: bool = False, lattice_symmetric: bool = False) -> dict:
    """Importance-sampling and neural-MCMC estimates at one temperature, as one flat dict.

    Column names follow the reference tables (``free_energy`` is the importance-sampled F_IS,
    ``variational_free_energy`` the upper bound F_q, ``energy`` and ``heat_capacity`` come from
    neural MCMC), totals for the whole supercell with ``*_per_site`` copies. The observables
    of :func:`lattherm.observables.standard_observables` (m, |m|, composition; on FCC the
    sublattice concentrations and order parameters; Warren-Cowley on alloy lattices), under the
    MCMC tables' column names, are neural-MCMC means with error bars.
    ``burn_in`` defaults to a tenth of ``mcmc_steps``. A conditional model needs the
    ``conditioning`` saved with its checkpoint; its cond comes from ``system`` and
    ``temperature`` (:func:`system_cond`), extrapolating silently outside the trained ranges.
    ``z2_symmetric`` samples from the spin-flip symmetrised model
    (:class:`lattherm.models.symmetric.Z2Symmetric`); a model trained symmetrised already is one
    (the ``z2_symmetric`` column says which was sampled); ``lattice_symmetric`` likewise samples
    the mixture over the cell's point group (:class:`lattherm.models.symmetric.LatticeSymmetric`,
    refused where its permutations change the energy). A ``physics_logits`` model must have
    its Hamiltonian attached (training and loading a checkpoint do); its beta is set here.
    """
    model = with_symmetries(model, system.cell, z2_symmetric, lattice_symmetric)
    check_lattice_symmetry(model, system.hamiltonian, system.n_ones)
    z2_symmetric = isinstance(model, Z2Symmetric)  # trained symmetrised (z2_symmetric in its spec) or asked for
    lattice_symmetric = isinstance(model.base if z2_symmetric else model, LatticeSymmetric)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    estimates = importance_estimates(model, system, temperature, n_samples, conditioning, batch_size, generator)
    hamiltonian, beta = system.hamiltonian.to(device), estimates["beta"]
    cond1 = system_cond(model, system, temperature, conditioning, 1)
    burn_in = mcmc_steps // 10 if burn_in is None else burn_in
    mc = neural_mcmc(model, hamiltonian, beta, n_chains=mcmc_chains, n_steps=mcmc_steps, burn_in=burn_in,
                     cond=cond1, n_ones=system.n_ones, observables=standard_observables(system.lattice),
                     generator=generator, batch_size=batch_size)
    n_sites = system.n_sites
    energy, energy_err = mc.mean_and_error("energy")
    out = {
        **estimates, "z2_symmetric": z2_symmetric, "lattice_symmetric": lattice_symmetric,
        "energy": energy, "energy_err": energy_err,
        "energy_per_site": energy / n_sites, "energy_per_site_err": energy_err / n_sites,
        "heat_capacity": heat_capacity(mc.energy, beta),
        "heat_capacity_per_site": heat_capacity(mc.energy, beta) / n_sites,
        "acceptance": mc.acceptance, "tau_int_energy": mc.tau_int["energy"],
    }
    for name in mc.observables:
        out[name], out[f"{name}_err"] = mc.mean_and_error(name)
    return out
