"""Transfer a trained sampler from a small supercell to a larger one (science.md §2).

A model trained on a small supercell is rebuilt on a larger supercell of the same lattice kind
(``on_lattice``: the transformer's geometric positional encodings are recomputed, the weights
kept), optionally fine-tuned for a few steps there, and then corrected exactly: importance
weights give F_IS with its error and the ESS, and neural MCMC gives unbiased energies, heat
capacity and order parameters. MADE is tied to one size and refuses with a clear error.
"""

from __future__ import annotations

from dataclasses import replace

from lattherm.sampling.evaluate import evaluate
from lattherm.training.checkpoint import load_trained_model, system_description
from lattherm.training.variational import TrainConfig, resolve_device, train


def transfer(
    checkpoint,
    system,
    temperature: float | None = None,
    finetune_steps: int = 0,
    finetune_lr: float | None = None,
    n_samples: int = 10000,
    mcmc_chains: int = 64,
    mcmc_steps: int = 200,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    z2_symmetric: bool = False,
) -> dict:
    """Estimates on ``system`` from the model in ``checkpoint``, trained on this cell or a
    smaller one (on its own cell, the ensemble and every Hamiltonian field must be the
    checkpoint's, a spin glass's coupling draw included).

    The Hamiltonian must be the checkpoint's (same J and h, the same cluster expansion), except
    for a spin glass's coupling draw: the larger cell has other couplings by nature, so the
    model and coupling distribution must agree but the seed may differ (the model learned the
    distribution, and the correction below is exact for whichever draw).
    ``temperature`` defaults to the training temperature (a temperature-conditioned model needs
    one). Fine-tuning reuses the checkpoint's training settings without annealing (the model
    starts close to the target, so annealing would only move it away first) and, unless
    ``finetune_lr`` is given, a tenth of the training learning rate: its Adam state is fresh,
    and the first Adam steps move every weight by about lr whatever its gradient. (In one exploratory
    run, 10x10 -> 20x20 Ising at T = 3, 10 steps: ESS 0.054 zero-shot, 0.042 at the training
    rate, 0.18 at a tenth of it.)
    Returns one flat dict: :func:`lattherm.sampling.evaluate`'s estimates plus the sizes and
    the fine-tuning record.
    """
    if finetune_steps < 0:
        raise ValueError(f"finetune_steps must be >= 0, got {finetune_steps}")
    dev = resolve_device(device)
    loaded = load_trained_model(checkpoint, system, dev, same_size=False)
    if loaded.checkpoint["system"]["repeats"] == system_description(system)["repeats"]:
        loaded = load_trained_model(checkpoint, system, dev, same_size=True)
    model = loaded.model
    saved = TrainConfig.from_dict(loaded.checkpoint["config"])
    if temperature is None:
        if saved.temperature is None:
            raise ValueError("the checkpoint's model is temperature-conditioned: give a temperature")
        temperature = saved.temperature
    source_sites = loaded.checkpoint["system"]["n_sites"]

    final_F_q = float("nan")
    if finetune_steps:
        config = replace(saved, steps=finetune_steps, checkpoint_every=finetune_steps, anneal=0.0, seed=seed,
                         device=str(dev), lr=finetune_lr if finetune_lr is not None else saved.lr / 10,
                         temperature=temperature if saved.temperature is not None else None)
        log = train(model, system, config, progress=progress).log
        final_F_q = float(log.F_q.iloc[-1])
    out = evaluate(model, system, temperature, n_samples=n_samples, conditioning=loaded.conditioning,
                   mcmc_chains=mcmc_chains, mcmc_steps=mcmc_steps, seed=seed, z2_symmetric=z2_symmetric)
    return {"source_sites": source_sites, "target_sites": system.n_sites,
            "finetune_steps": finetune_steps, "finetune_last_F_q": final_F_q, **out}
