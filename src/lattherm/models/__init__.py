"""Neural samplers and the one factory that builds them from a config spec.

base.py: the contract; sampling.py: the one ancestral sampling loop; made.py, transformer.py:
the autoregressive models; symmetric.py: the spin-flip (Z2) and lattice-symmetry mixtures of either.
"""

from __future__ import annotations

from lattherm.models.base import Autoregressive, NeuralSampler, canonical_mask
from lattherm.models.made import MADE, MADEConfig

MODEL_KINDS = ("made", "transformer")


def build_model(spec: dict, cell) -> NeuralSampler:
    """Build a model from ``{"kind": "made" | "transformer", **hyperparameters}`` on ``cell``:
    a :class:`lattherm.lattices.Lattice`, or the site count (int) of a system without a lattice
    (Sherrington-Kirkpatrick), where the transformer has no geometric encodings (a learned
    embedding per site instead; :class:`lattherm.models.transformer.AnyOrderTransformer`).

    The transformer is imported lazily so that MADE-only use does not pay for it. With
    ``z2_symmetric: true`` the model is the spin-flip symmetrised one
    (:class:`lattherm.models.symmetric.Z2Symmetric`), with ``lattice_symmetric: true`` the
    mixture over the cell's point group (:class:`lattherm.models.symmetric.LatticeSymmetric`);
    ``auto`` is resolved against the system when training starts
    (:func:`lattherm.models.symmetric.resolve_symmetries`).
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"model spec must be a mapping with a 'kind' key, got {spec!r}")
    params = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"]
    if kind == "made":
        model = MADE(_make_config(MADEConfig, params, kind), cell if isinstance(cell, int) else cell.n_sites)
    elif kind == "transformer":
        from lattherm.models.transformer import AnyOrderTransformer, TransformerConfig

        model = AnyOrderTransformer(_make_config(TransformerConfig, params, kind), cell)
    else:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    from lattherm.models.symmetric import symmetrise

    return symmetrise(model, cell)


def model_spec(model: NeuralSampler) -> dict:
    """The spec that :func:`build_model` turns back into an equal model (saved in checkpoints)."""
    from lattherm.models.symmetric import innermost

    base = innermost(model)
    kind = "made" if isinstance(base, MADE) else "transformer"
    return {"kind": kind, **model.hyperparameters()}


def _make_config(cls, params: dict, kind: str):
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown {kind} hyperparameters {unknown}; known: {sorted(known)}")
    return cls(**params)


__all__ = ["MODEL_KINDS", "MADE", "Autoregressive", "MADEConfig", "NeuralSampler", "build_model", "canonical_mask", "model_spec"]
