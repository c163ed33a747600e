"""Thermodynamic estimates of one system at one temperature from a trained neural sampler."""

from __future__ import annotations

import math

import torch

from lattherm.sampling.estimators import (
    default_observables, ess_per_sample, free_energy_is, heat_capacity, log_weights, neural_mcmc,
)


def conditioning(model, system, temperature: float, cond_beta_ref: float | None, batch: int):
    """The model's cond input at ``temperature`` (None for an unconditional model)."""
    if model.hyperparameters().get("n_cond", 0) == 0:
        return None
    if cond_beta_ref is None:
        raise ValueError("a conditional model needs the cond_beta_ref saved with its checkpoint")
    beta = system.beta(temperature)
    return torch.full((batch, 1), beta / cond_beta_ref, dtype=torch.float32)


@torch.no_grad()
def evaluate(model, system, temperature: float, n_samples: int = 10000, cond_beta_ref: float | None = None,
             mcmc_chains: int = 64, mcmc_steps: int = 200, burn_in: int | None = None, batch_size: int = 4096,
             seed: int = 0) -> dict:
    """Importance-sampling and neural-MCMC estimates at one temperature, as one flat dict.

    Column names follow the reference tables (``free_energy`` is the importance-sampled F_IS,
    ``variational_free_energy`` the upper bound F_q, ``energy`` and ``heat_capacity`` come from
    neural MCMC), totals for the whole supercell with ``*_per_site`` copies. Order
    parameters (|m|, and the FCC sublattice order) are neural-MCMC means with error bars.
    ``burn_in`` defaults to a tenth of ``mcmc_steps``.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    device = next(model.parameters()).device
    hamiltonian = system.hamiltonian.to(device)
    beta = system.beta(temperature)
    generator = torch.Generator(device=device).manual_seed(seed)
    log_w_parts = []
    for start in range(0, n_samples, batch_size):
        n = min(batch_size, n_samples - start)
        cond = conditioning(model, system, temperature, cond_beta_ref, n)
        x, log_q = model.sample(n, cond=None if cond is None else cond.to(device), n_ones=system.n_ones,
                                generator=generator)
        log_w_parts.append(log_weights(hamiltonian.energy(x), log_q, beta))
    log_w = torch.cat(log_w_parts)
    f_is, f_is_err = free_energy_is(log_w, beta)
    reward = -log_w / beta  # E + ln q / beta
    cond1 = conditioning(model, system, temperature, cond_beta_ref, 1)
    burn_in = mcmc_steps // 10 if burn_in is None else burn_in
    mc = neural_mcmc(model, hamiltonian, beta, n_chains=mcmc_chains, n_steps=mcmc_steps, burn_in=burn_in,
                     cond=cond1, n_ones=system.n_ones, observables=default_observables(system.lattice),
                     generator=generator, batch_size=batch_size)
    n_sites = system.lattice.n_sites
    energy, energy_err = mc.mean_and_error("energy")
    out = {
        "temperature": float(temperature), "beta": beta, "n_sites": n_sites, "n_samples": n_samples,
        "free_energy": f_is, "free_energy_err": f_is_err,
        "free_energy_per_site": f_is / n_sites, "free_energy_per_site_err": f_is_err / n_sites,
        "ess": ess_per_sample(log_w),
        "variational_free_energy": reward.mean().item(),
        "variational_free_energy_err": reward.std().item() / math.sqrt(n_samples),
        "energy": energy, "energy_err": energy_err,
        "heat_capacity": heat_capacity(mc.energy, beta),
        "heat_capacity_per_site": heat_capacity(mc.energy, beta) / n_sites,
        "acceptance": mc.acceptance, "tau_int_energy": mc.tau_int["energy"],
    }
    for name in mc.observables:
        out[name], out[f"{name}_err"] = mc.mean_and_error(name)
    return out
