"""The workflow configuration, checked once and up front, before any job runs.

The Snakefile calls :func:`check_workflow_config`. The whole config is validated against the
schema (types, ranges, unknown keys), each block by its typed class (:class:`SystemConfig`,
:class:`AlloyConfig`, :class:`PhaseDiagramConfig`, :class:`NeuralPhaseDiagramConfig`, which also fill in the defaults), and then the
rules that join blocks: alloys that exist and fit the system's lattice, models that have a
section, transformer cells within the dense-geometry limit and patches that tile them, disorder samples whose names are free. Each failure is one
:class:`ConfigError` naming the field (``systems.ising.mcmc.burn_in``) and its value.
"""

from __future__ import annotations

import math

from lattherm.analysis.neural_free_energy import NeuralPhaseDiagramConfig
from lattherm.ce.fit import AlloyConfig
from lattherm.lattices import MAX_DENSE_SITES, cell_sites, size_tag
from lattherm.mcmc.phase_scans import PhaseDiagramConfig
from lattherm.models.transformer import MAX_PATCH_SITES, TransformerConfig
from lattherm.schema import SCHEMA_PATH, ConfigError, check_block
from lattherm.systems import SystemConfig
from lattherm.training.variational import TrainConfig, TrainingSettingsError

MODEL_KEYS = {  # keys of a `models` section that only one model kind reads
    "transformer": {"d_model", "n_layer", "n_head", "mlp_ratio", "n_freq", "n_bias_shells", "attention_shells",
                    "full_penalty", "penalty_fraction", "score", "patch"},
    "made": {"hidden", "width", "depth", "residual"},
}

__all__ = ["ConfigError", "check_workflow_config", "SCHEMA_PATH"]


def check_workflow_config(config: dict) -> None:
    """Validate ``config`` in place: schema, typed blocks (defaults filled in), cross-block rules."""
    from snakemake.utils import validate

    check_block(config, None, "")
    # The typed blocks first: a block's own keys (not the defaults) say which fields it set.
    alloys = {name: AlloyConfig.from_dict(block, f"alloys.{name}") for name, block in config.get("alloys", {}).items()}
    systems = {name: SystemConfig.from_dict(block, f"systems.{name}") for name, block in config["systems"].items()}
    _check_disorder_names(systems)
    for name, system in systems.items():  # before validate, whose defaults cannot fill a null mcmc block
        if system.mcmc is None:
            raise ConfigError(f"systems.{name}.mcmc is missing: the workflow runs the MCMC reference of every system "
                              "(give at least mcmc.temperatures)")
        if not system.temperatures:
            raise ConfigError(f"systems.{name}.temperatures = [] is empty: the workflow evaluates every system there")
    validate(config, str(SCHEMA_PATH))  # passes now; fills in the defaults of the other sections
    config["alloys"] = {name: vars(alloy) for name, alloy in alloys.items()}
    config["systems"] = {name: system.to_dict() for name, system in systems.items()}
    for name, system in systems.items():
        if system.alloy is not None:
            _check_alloy_of(f"systems.{name}", system.alloy, system.lattice, alloys)
    if "phase_diagram" in config:
        block = config["phase_diagram"]  # the schema has filled in its defaults
        _check_alloy_of("phase_diagram", block["alloy"], block["lattice"], alloys)  # before the cell's own checks
        diagram = PhaseDiagramConfig.from_dict(block)
        config["phase_diagram"] = vars(diagram)
    _check_neural(config, systems)
    if "neural_phase_diagram" in config:
        _check_neural_phase_diagram(config, alloys)


def neural_runs(config: dict, system: SystemConfig) -> dict[str, list[float]]:
    """A system's neural training runs: tag -> training temperatures ("T2.269" -> [2.269], or
    with neural.conditioned one temperature-conditioned run "all" over the range of its
    neural_temperatures)."""
    temperatures = system.neural_temperatures
    if not temperatures or not config["neural"]["conditioned"]:
        return {f"T{t:g}": [t] for t in temperatures}
    return {"all": [min(temperatures), max(temperatures)]}


def training_settings(config: dict, system: SystemConfig, temperatures: list[float]) -> dict:
    """One run's training settings, as :class:`TrainConfig` reads them: the training section
    overridden by the system's own, with the seed and the run's temperature (one) or range."""
    key, value = ("temperature", temperatures[0]) if len(temperatures) == 1 else ("temperature_range", temperatures)
    return dict(config["training"], **(system.training or {}), seed=config["seed"], **{key: value})


def _check_disorder_names(systems: dict[str, SystemConfig]) -> None:
    """The disorder samples of a block are systems of their own (NAME_seedS): their names must be free."""
    for name, system in systems.items():
        members = list(system.disorder_members(name))
        taken = [member for member in members if member != name and member in systems]
        if taken:
            raise ConfigError(f"systems.{name}.disorder_samples = {system.disorder_samples} names its samples "
                              f"{members[0]} .. {members[-1]}, but systems.{taken[0]} exists already")


def _check_alloy_of(where: str, alloy: str, lattice: str, alloys: dict[str, AlloyConfig]) -> None:
    if alloy not in alloys:
        raise ConfigError(f"{where}.alloy = {alloy!r} is not under alloys (alloys has {sorted(alloys)})")
    if not lattice.startswith(alloys[alloy].lattice):
        raise ConfigError(f"{where}.lattice = {lattice!r} is not a cell of alloys.{alloy}.lattice = "
                          f"{alloys[alloy].lattice!r}")


def _check_patch(field: str, section: dict, name: str, system: SystemConfig) -> None:
    """A transformer's patch tiles every cell of the system, has a vocabulary the model allows,
    and has physics logits only for a pair model."""
    patch = section.get("patch")
    if patch is None:
        return
    sites = cell_sites(system.lattice, [1] * len(system.train_size)) * math.prod(patch)
    if len(patch) != len(system.train_size) or sites > MAX_PATCH_SITES:
        raise ConfigError(f"{field} = {patch}: systems.{name} needs one entry per lattice axis ({len(system.train_size)}) "
                          f"and at most {MAX_PATCH_SITES} sites per patch (vocabulary 2^k), got {sites}")
    for size in system.sizes:
        if any(n % p for n, p in zip(size, patch)):
            raise ConfigError(f"{field} = {patch} does not tile the {size_tag(size)} cell of systems.{name}")
    if section.get("physics_logits") and system.model == "cluster_expansion":
        raise ConfigError(f"{field} = {patch}: physics_logits with patches needs a pair model, systems.{name} is a "
                          f"cluster expansion (set patch: null or physics_logits: false)")


def _check_neural_phase_diagram(config: dict, alloys: dict[str, AlloyConfig]) -> None:
    """The neural F(x, T) block: its alloy, its transformer, its cells (typed; defaults filled in)."""
    block = config["neural_phase_diagram"]
    _check_alloy_of("neural_phase_diagram", block["alloy"], block["lattice"], alloys)
    models = config.get("models", {})
    if block["model"] not in models or models[block["model"]]["kind"] != "transformer":
        raise ConfigError(f"neural_phase_diagram.model = {block['model']!r} must name a transformer section under "
                          f"models (transformers: {sorted(m for m, s in models.items() if s['kind'] == 'transformer')})")
    if "training" not in config:
        raise ConfigError("config training is missing: neural_phase_diagram trains a model")
    neural = NeuralPhaseDiagramConfig.from_dict(block)
    for size in neural.sizes:
        if cell_sites(neural.lattice, size) > MAX_DENSE_SITES:
            raise ConfigError(f"neural_phase_diagram: the {size} cell has {cell_sites(neural.lattice, size)} sites; "
                              f"the transformer needs a lattice of at most {MAX_DENSE_SITES} sites")
    try:  # the one run's settings as its job will read them
        TrainConfig.from_dict(neural.training_block(config["training"], config["seed"]))
    except TrainingSettingsError as exc:
        raise ConfigError(f"neural_phase_diagram: {exc} (the training section with neural_phase_diagram.training)") from None
    config["neural_phase_diagram"] = {**vars(neural), "mcmc": vars(neural.mcmc)}


def _check_neural(config: dict, systems: dict[str, SystemConfig]) -> None:
    trained = [name for name, system in systems.items() if system.neural_temperatures]
    if not trained:
        return
    if "neural" not in config or "training" not in config:
        missing = "neural" if "neural" not in config else "training"
        raise ConfigError(f"config {missing} is missing: systems {trained} have neural_temperatures")
    models = config["models"]
    for i, model in enumerate(config["neural"]["models"]):
        if model not in models:
            raise ConfigError(f"neural.models[{i}] = {model!r} has no section under models (models has {sorted(models)})")
    for name, section in models.items():
        foreign = sorted(set(section) & set().union(*MODEL_KEYS.values()) - MODEL_KEYS[section["kind"]])
        if foreign:
            raise ConfigError(f"models.{name}.{foreign[0]} does not apply to kind {section['kind']!r}")
    for name in trained:
        for i, model in enumerate(systems[name].neural_models or []):
            if model not in models:
                raise ConfigError(f"systems.{name}.neural_models[{i}] = {model!r} has no section under models "
                                  f"(models has {sorted(models)})")
    for name in trained:  # every run's settings as its job will read them, before any job
        for temperatures in neural_runs(config, systems[name]).values():
            try:
                TrainConfig.from_dict(training_settings(config, systems[name], temperatures))
            except TrainingSettingsError as exc:
                raise ConfigError(f"systems.{name}: {exc} (the training section with systems.{name}.training, "
                                  f"neural.conditioned = {config['neural']['conditioned']})") from None
    for name in trained:
        system = systems[name]
        trained_models = system.neural_models or config["neural"]["models"]
        transformers = [m for m in trained_models if models[m]["kind"] == "transformer"]
        if not transformers:
            continue
        if system.lattice is None:  # no geometry to encode: the transformer embeds each site instead
            for model in transformers:
                section = models[model]
                for field in ("n_freq", "n_bias_shells", "attention_shells", "patch"):
                    value = section.get(field, TransformerConfig.__dataclass_fields__[field].default)
                    if value not in (0, None):
                        raise ConfigError(f"models.{model}.{field} = {value!r}: systems.{name} has no lattice, so its "
                                          f"transformer has no geometry to encode (set n_freq: 0, n_bias_shells: 0, "
                                          f"attention_shells: null, patch: null)")
            continue
        for size in system.sizes:
            if system.n_sites(size) > MAX_DENSE_SITES:
                raise ConfigError(f"systems.{name}: the {size} cell has {system.n_sites(size)} sites; the transformer models "
                                  f"{transformers} need a lattice of at most {MAX_DENSE_SITES} sites")
        for model in transformers:
            _check_patch(f"models.{model}.patch", models[model], name, system)
