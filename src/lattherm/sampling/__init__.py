"""Estimators from neural samples: importance-sampled ln Z, F and means, ESS, neural MCMC.
(Observables, shared with the MCMC tables, live in :mod:`lattherm.observables`.)"""

from lattherm.sampling.estimators import (
    NeuralMCMCResult,
    ess_per_sample,
    free_energy_is,
    importance_mean,
    log_weights,
    log_z_is,
    neural_mcmc,
    pareto_k,
)
from lattherm.sampling.evaluate import evaluate

__all__ = ["NeuralMCMCResult", "evaluate", "ess_per_sample", "free_energy_is", "importance_mean", "log_weights",
           "log_z_is", "neural_mcmc", "pareto_k"]
