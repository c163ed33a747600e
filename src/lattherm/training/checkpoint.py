"""Checkpoints of neural samplers: what a run saves, and the checks made when loading one.

A checkpoint records the model (kind, hyperparameters, weights), the system it was trained on
(lattice kind and size, species, ensemble, the Hamiltonian's ``identity()``), the training
state (optimizer, step, every RNG state, the log so far), the training config and the
conditioning of a conditional model (:class:`lattherm.sampling.evaluate.Conditioning` as a
dict, None if unconditional), so a run resumes bit for bit and a model is never silently
loaded onto a system or Hamiltonian it does not describe.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lattherm.io import CheckpointError, load_checkpoint
from lattherm.lattices import make_lattice
from lattherm.models import NeuralSampler, build_model
from lattherm.models.physics import attach_physics
from lattherm.models.symmetric import check_lattice_symmetry
from lattherm.sampling.evaluate import Conditioning

FORMAT = "lattherm-neural-1"
# Hamiltonian identity fields that name one random draw of couplings on one cell (the EA and SK
# seed, SK's size). A larger cell has other couplings by nature: a transfer compares the model
# and its coupling distribution, not these (as a spin-glass study averages over draws anyway).
CELL_FIELDS = ("seed", "n_sites")


def hamiltonian_identity(system) -> dict:
    """``system.hamiltonian.identity()``, with the semi-grand ``dmu`` even where it is 0."""
    identity = system.hamiltonian.identity()
    if system.ensemble == "semi_grand":
        identity.setdefault("dmu", 0.0)  # build_system leaves a zero dmu out of the Hamiltonian
    return identity


def system_description(system) -> dict:
    """The identity of a system as far as a model cares: geometry, species, ensemble, Hamiltonian.
    A system without a lattice (Sherrington-Kirkpatrick) has lattice kind and constant None and
    its size as repeats."""
    lat = system.lattice
    return {
        "name": system.name,
        "lattice_kind": None if lat is None else lat.kind,
        "repeats": list(system.size) if lat is None else list(lat.repeats),
        "lattice_constant": None if lat is None else float(lat.lattice_constant),
        "n_sites": system.n_sites,
        "species": list(system.species),
        "ensemble": system.ensemble,
        "n_ones": system.n_ones,
        "hamiltonian": hamiltonian_identity(system),
    }


def check_system(path, saved: dict, system, same_size: bool, same_composition: bool = True,
                 same_dmu: bool = True) -> None:
    """Raise :class:`CheckpointError` unless ``system`` matches the description saved in ``path``.

    The lattice kind, the species and the Hamiltonian always have to agree (a model of CuAu on
    FCC means nothing for an Ising square lattice, nor one of J = 2 for J = 1). With
    ``same_size`` the supercell and ensemble must agree too, and the canonical composition
    unless ``same_composition`` is False (a model conditioned on it); without it, the
    Hamiltonian's :data:`CELL_FIELDS` are not compared. ``same_dmu`` False leaves out the
    semi-grand dmu (a model conditioned on it).
    """
    now = system_description(system)
    keys = ["lattice_kind", "species"]
    if same_size:
        keys += ["repeats", "ensemble"] + (["n_ones"] if same_composition else [])
    for key in keys:
        if saved.get(key) != now[key]:
            raise CheckpointError(
                f"checkpoint {path} was trained for {key} = {saved.get(key)!r}, but the system has {now[key]!r}")
    if "hamiltonian" not in saved:
        raise CheckpointError(f"checkpoint {path} was written before lattherm recorded the Hamiltonian; retrain")
    old, new = saved["hamiltonian"], now["hamiltonian"]
    ignored = set() if same_size else set(CELL_FIELDS)
    ignored |= set() if same_dmu else {"dmu"}
    for field in [*old, *(f for f in new if f not in old)]:
        if field not in ignored and old.get(field) != new.get(field):
            raise CheckpointError(f"checkpoint {path} was trained for the Hamiltonian's {field} = "
                                  f"{old.get(field)!r}, but the system has {new.get(field)!r}")


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


def seed_rngs(seed: int, generator: torch.Generator) -> None:
    """Seed every random state that :func:`rng_states` saves, so a fresh run is reproducible whole."""
    torch.manual_seed(seed)
    generator.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


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
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is an empty file")
    with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
        warnings.simplefilter("ignore", UserWarning)
        state = load_checkpoint(path, map_location=device)
    missing = [k for k in ("format", "model_spec", "model_state", "optimizer_state", "step", "rng", "log", "system",
                           "config") if k not in state]
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

    def evaluation_temperatures(self, grid: list[float]) -> list[float]:
        """Where to evaluate the model: its training temperature, or for a temperature-conditioned
        model the points of ``grid`` (a system's temperatures) within its trained range."""
        if self.temperature is not None:
            return [self.temperature]
        low, high = self.checkpoint["config"]["temperature_range"]
        inside = [t for t in grid if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]
        if not inside:
            raise CheckpointError(f"no evaluation temperature {grid} lies in the trained range [{low}, {high}]")
        return inside


def load_trained_model(path, system, device: str | torch.device = "cpu", same_size: bool = True) -> TrainedModel:
    """Rebuild the model of a checkpoint on its own supercell, load its weights, and move it
    onto ``system``'s lattice (``on_lattice``), which must be the same size when ``same_size``."""
    state = read_checkpoint(path, device)
    conditioned = [] if state.get("conditioning") is None else state["conditioning"]["variables"]
    check_system(path, state["system"], system, same_size, same_composition="concentration" not in conditioned,
                 same_dmu="dmu" not in conditioned)
    saved = state["system"]
    if saved["lattice_kind"] is None:
        own_cell = saved["n_sites"]
    else:
        repeats = saved["repeats"][:2] if saved["lattice_kind"] == "square" else saved["repeats"]
        own_cell = make_lattice(saved["lattice_kind"], repeats, saved["lattice_constant"])
    model = build_model(dict(state["model_spec"]), own_cell)
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} weights do not fit its model spec: {exc}") from exc
    if saved["repeats"] != system_description(system)["repeats"]:
        model = model.on_lattice(system.cell)
    model = model.to(device)
    # physics_logits: this cell's Hamiltonian (a dmu-conditioned model reads dmu from cond), at
    # the training temperature unless beta comes from cond (evaluate sets its own)
    conditioning = None if state.get("conditioning") is None else Conditioning.from_dict(state["conditioning"])
    temperature = state["config"].get("temperature")
    hamiltonian = system.hamiltonian
    if "dmu" in conditioned and hasattr(hamiltonian, "base"):
        hamiltonian = hamiltonian.base
    attach_physics(model, hamiltonian, conditioning, None if temperature is None else system.beta(temperature))
    try:  # lattice_symmetric: the permutations of this cell, checked against its Hamiltonian
        check_lattice_symmetry(model, system.hamiltonian, system.n_ones)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    return TrainedModel(model=model, checkpoint=state)
