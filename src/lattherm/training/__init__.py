"""Variational training of neural samplers, with checkpoints that resume exactly."""

from lattherm.training.checkpoint import TrainedModel, load_trained_model, read_checkpoint, system_description
from lattherm.training.variational import TrainConfig, TrainResult, beta_features, resolve_device, train

__all__ = ["TrainConfig", "TrainResult", "TrainedModel", "beta_features", "load_trained_model",
           "read_checkpoint", "resolve_device", "system_description", "train"]
