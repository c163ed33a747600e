"""Neural samplers and the one factory that builds them from a config spec.

base.py: the contract; sampling.py: the one ancestral sampling loop; made.py, transformer.py:
the autoregressive models; symmetric.py: the Z2 (spin-flip) wrapper of either.
"""

from __future__ import annotations

from lattherm.models.base import Autoregressive, NeuralSampler, canonical_mask
from lattherm.models.made import MADE, MADEConfig

MODEL_KINDS = ("made", "transformer")


def build_model(spec: dict, lattice) -> NeuralSampler:
    """Build a model from ``{"kind": "made" | "transformer", **hyperparameters}``.

    The transformer is imported lazily so that MADE-only use does not pay for it.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"model spec must be a mapping with a 'kind' key, got {spec!r}")
    params = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"]
    if kind == "made":
        return MADE(_make_config(MADEConfig, params, kind), lattice)
    if kind == "transformer":
        from lattherm.models.transformer import AnyOrderTransformer, TransformerConfig

        return AnyOrderTransformer(_make_config(TransformerConfig, params, kind), lattice)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


def model_spec(model: NeuralSampler) -> dict:
    """The spec that :func:`build_model` turns back into an equal model (saved in checkpoints)."""
    kind = "made" if isinstance(model, MADE) else "transformer"
    return {"kind": kind, **model.hyperparameters()}


def _make_config(cls, params: dict, kind: str):
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown {kind} hyperparameters {unknown}; known: {sorted(known)}")
    return cls(**params)


__all__ = ["MODEL_KINDS", "MADE", "Autoregressive", "MADEConfig", "NeuralSampler", "build_model", "canonical_mask", "model_spec"]
