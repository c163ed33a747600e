"""Variational training of neural samplers, with checkpoints that resume exactly."""

from lattherm.training.checkpoint import TrainedModel, load_trained_model, read_checkpoint, system_description
from lattherm.training.variational import (
    TrainConfig,
    TrainingTerms,
    TrainResult,
    consistency_residuals,
    resolve_device,
    train,
    training_conditioning,
    training_terms,
)

__all__ = ["TrainConfig", "TrainResult", "TrainedModel", "TrainingTerms", "consistency_residuals", "load_trained_model",
           "read_checkpoint", "resolve_device", "system_description", "train", "training_conditioning", "training_terms"]
