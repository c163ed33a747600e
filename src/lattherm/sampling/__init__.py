"""Estimators from neural samples: importance-sampled ln Z and F, ESS, neural MCMC."""

from lattherm.sampling.evaluate import evaluate

from lattherm.sampling.estimators import (
    NeuralMCMCResult,
    abs_magnetization,
    default_observables,
    ess_per_sample,
    free_energy_is,
    heat_capacity,
    log_weights,
    log_z_is,
    neural_mcmc,
    sublattice_order,
)

__all__ = [
    "NeuralMCMCResult", "evaluate", "abs_magnetization", "default_observables", "ess_per_sample", "free_energy_is",
    "heat_capacity", "log_weights", "log_z_is", "neural_mcmc", "sublattice_order",
]
