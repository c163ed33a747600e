"""Checkpoints of neural samplers: what a run saves, and the checks made when loading one.

A checkpoint records the model (kind, hyperparameters, weights), the system it was trained on
(lattice kind and size, species, ensemble), the training state (optimizer, step, every RNG
state, the log so far), the training config and the conditioning of a conditional model
(:class:`lattherm.sampling.evaluate.Conditioning` as a dict, None if unconditional), so a run
resumes bit for bit and a model is never silently loaded onto a system it does not describe.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from lattherm.io import CheckpointError, load_checkpoint
from lattherm.lattices import make_lattice
from lattherm.models import NeuralSampler, build_model
from lattherm.sampling.evaluate import Conditioning

FORMAT = "lattherm-neural-1"


def system_description(system) -> dict:
    """The identity of a system as far as a model cares: geometry, species and ensemble."""
    lat = system.lattice
    return {
        "name": system.name,
        "lattice_kind": lat.kind,
        "repeats": list(lat.repeats),
        "lattice_constant": float(lat.lattice_constant),
        "n_sites": lat.n_sites,
        "species": list(system.species),
        "ensemble": system.ensemble,
        "n_ones": system.n_ones,
    }


def check_system(saved: dict, system, same_size: bool, same_composition: bool = True) -> None:
    """Raise :class:`CheckpointError` unless ``system`` matches the saved description.

    The lattice kind and the species always have to agree (a model of CuAu on FCC means nothing
    for an Ising square lattice); with ``same_size`` the supercell and ensemble must agree too,
    and the canonical composition unless ``same_composition`` is False (a model conditioned on it).
    """
    now = system_description(system)
    keys = ["lattice_kind", "species"]
    if same_size:
        keys += ["repeats", "ensemble"] + (["n_ones"] if same_composition else [])
    for key in keys:
        if saved.get(key) != now[key]:
            raise CheckpointError(
                f"checkpoint was trained for {key} = {saved.get(key)!r}, but the system has {now[key]!r}"
            )


def rng_states(generator: torch.Generator) -> dict:
    """Every random state a run touches, in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["generator"])
    npst = states["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def read_checkpoint(path, device: str | torch.device = "cpu") -> dict:
    """Load and validate the structure of a lattherm neural checkpoint."""
    state = load_checkpoint(path, map_location=device)
    missing = [k for k in ("format", "model_spec", "model_state", "system", "config") if k not in state]
    if missing or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (missing {missing or ['format']})")
    return state


@dataclass
class TrainedModel:
    """A model restored from a checkpoint with what is needed to condition and sample it."""

    model: NeuralSampler
    checkpoint: dict

    @property
    def conditioning(self) -> Conditioning | None:
        """What the model's cond input holds (None for an unconditional model)."""
        saved = self.checkpoint.get("conditioning")
        return None if saved is None else Conditioning.from_dict(saved)

    @property
    def temperature(self) -> float | None:
        """The single training temperature (None for a temperature-conditioned model)."""
        return self.checkpoint["config"].get("temperature")


def load_trained_model(path, system, device: str | torch.device = "cpu", same_size: bool = True) -> TrainedModel:
    """Rebuild the model of a checkpoint on its own supercell, load its weights, and move it
    onto ``system``'s lattice (``on_lattice``), which must be the same size when ``same_size``."""
    state = read_checkpoint(path, device)
    conditioning = state.get("conditioning")
    check_system(state["system"], system, same_size,
                 same_composition=conditioning is None or "concentration" not in conditioning["variables"])
    saved = state["system"]
    repeats = saved["repeats"][:2] if saved["lattice_kind"] == "square" else saved["repeats"]
    own_lattice = make_lattice(saved["lattice_kind"], repeats, saved["lattice_constant"])
    model = build_model(dict(state["model_spec"]), own_lattice)
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} weights do not fit its model spec: {exc}") from exc
    if own_lattice.n_sites != system.lattice.n_sites or own_lattice.repeats != system.lattice.repeats:
        model = model.on_lattice(system.lattice)
    return TrainedModel(model=model.to(device), checkpoint=state)
