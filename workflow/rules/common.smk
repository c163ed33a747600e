"""Input functions shared by the rules: which files a system, an alloy or a figure needs.

Every rule is generic over {system} (and {alloy}, {model}, {size}, {tag}); what differs between
systems is decided by their config blocks' capabilities (an alloy to fit, an exact reference, a
transferable model), never by their names. Config reaches a stage as its validated block, written
to results/config/ by the `config_block` rule, or as plain values in params.
"""

from lattherm.analysis.neural_free_energy import NeuralPhaseDiagramConfig
from lattherm.config import neural_runs, training_settings
from lattherm.exact import reference_method
from lattherm.io import write_json
from lattherm.lattices import cell_sites, size_tag
from lattherm.systems import SystemConfig

SYSTEM_BLOCKS = {name: SystemConfig.from_dict(block, f"systems.{name}") for name, block in config["systems"].items()}
# A block with disorder_samples > 1 stands for one system per coupling draw (NAME_seedS); every
# rule runs on those, and the spin-glass families (every spin-glass block) average them.
SYSTEMS = {member: system for name, block in SYSTEM_BLOCKS.items()
           for member, system in block.disorder_members(name).items()}
SPIN_GLASS_FAMILIES = {name: list(block.disorder_members(name)) for name, block in SYSTEM_BLOCKS.items()
                       if block.spin_glass}
# Families whose parallel tempering is checked by the energy / link-overlap identity: Gaussian
# couplings (it holds for them only) and several samples (it holds for the disorder average only).
IDENTITY_FAMILIES = [name for name, block in SYSTEM_BLOCKS.items() if block.gaussian_glass and block.disorder_samples > 1]

# The neural F(x, T) block, typed (the config check has filled in its defaults); None without one.
NEURAL_PD = (NeuralPhaseDiagramConfig.from_dict(config["neural_phase_diagram"])
             if "neural_phase_diagram" in config else None)


wildcard_constraints:
    system="|".join(SYSTEMS),
    family="|".join(SPIN_GLASS_FAMILIES) or "-",
    alloy="|".join(config["alloys"]) or "-",
    section="systems|alloys|models",
    size=r"\d+(x\d+)*",
    tag=r"all|T[0-9.e+-]+",
    x=r"[0-9.e-]+",
    direction="up|down",
    t=r"[0-9.e+]+",


def section_block(wildcards):
    """The validated block of a config section's entry; a system's is that of one disorder sample."""
    if wildcards.section == "systems":
        # a system's training overrides reach its runs through their training blocks, so that
        # changing them reruns the training, not the system's references
        return {key: value for key, value in SYSTEMS[wildcards.name].to_dict().items() if key != "training"}
    return config[wildcards.section][wildcards.name]


def sizes(system):
    """Cell sizes of a system as in file names ("4x4"): the training cell first."""
    return [size_tag(size) for size in SYSTEMS[system].sizes]


def runs(system):
    """Neural training runs of a system: tag -> training temperatures."""
    return neural_runs(config, SYSTEMS[system])


def alloy_files(system):
    """The CE file a system's stages read (none for spin models)."""
    alloy = SYSTEMS[system].alloy
    return [] if alloy is None else [f"results/ce/{alloy}.json"]


def training_block(wildcards):
    """The training settings of one run, as TrainConfig reads them."""
    return training_settings(config, SYSTEMS[wildcards.system], runs(wildcards.system)[wildcards.tag])


def exact_sizes(system):
    """Sizes with an exact reference (Kaufman or enumeration; the others have MCMC only)."""
    limit = config["exact"]["enumerate_max_sites"]
    return [tag for tag, size in zip(sizes(system), SYSTEMS[system].sizes) if reference_method(SYSTEMS[system], size, limit)]


def transferable(model):
    """Only lattice-aware models run on a larger cell; MADE's weights are tied to its size."""
    return config["models"][model]["kind"] == "transformer"


def models_of(system):
    """The models trained on a system: its neural_models, or all of neural.models."""
    return SYSTEMS[system].neural_models or config["neural"]["models"]


def neural_tables(system):
    """Estimates of every model and run on the training cell and (transformers) the transfer cells."""
    tables = []
    for model in models_of(system) if runs(system) else []:
        for tag in runs(system):
            run = f"results/neural/{system}/{model}/{tag}"
            tables.append(f"{run}/samples.csv")
            tables += [f"{run}/transfer_{size}.csv" for size in sizes(system)[1:] if transferable(model)]
    return tables


def enumerated_sizes(system):
    """Sizes whose exact reference is enumeration (so the exact P(q) exists too)."""
    limit = config["exact"]["enumerate_max_sites"]
    return [tag for tag, size in zip(sizes(system), SYSTEMS[system].sizes)
            if reference_method(SYSTEMS[system], size, limit) == "enumeration"]


def family_inputs(wildcards):
    """Every sample of a spin-glass family on its training cell: exact thermodynamics and P(q)
    (where enumerated), MCMC free energies, parallel-tempering P(q), neural estimates and P(q)."""
    tables = []
    for system in SPIN_GLASS_FAMILIES[wildcards.family]:
        size = sizes(system)[0]
        references = f"results/references/{system}"
        if size in exact_sizes(system):
            tables.append(f"{references}/exact_{size}.csv")
        if size in enumerated_sizes(system):
            tables.append(f"{references}/overlap_exact_{size}.csv")
        tables += [f"{references}/mcmc_{size}_free_energy.csv", f"{references}/overlap_pt_{size}.csv"]
        for model in models_of(system) if runs(system) else []:
            for tag in runs(system):
                tables += [f"results/neural/{system}/{model}/{tag}/samples.csv",
                           f"results/neural/{system}/{model}/{tag}/overlap.csv"]
    return tables


def family_summaries(wildcards):
    """The parallel-tempering summaries of a spin-glass family's samples on the training cell
    (the ingredients of the energy / link-overlap identity)."""
    return [f"results/references/{system}/overlap_pt_{sizes(system)[0]}_summary.csv"
            for system in SPIN_GLASS_FAMILIES[wildcards.family]]


def family_identity(wildcards):
    """A family's energy / link-overlap identity table, for its figure: Gaussian families of
    several samples only (IDENTITY_FAMILIES), none otherwise."""
    if wildcards.family in IDENTITY_FAMILIES:
        return [f"results/analysis/spin_glass/{wildcards.family}/identity.csv"]
    return []


def comparison_inputs(wildcards):
    """Exact references, MCMC free energies at every size, and the neural estimates of a system."""
    system = wildcards.system
    exact = [f"results/references/{system}/exact_{size}.csv" for size in exact_sizes(system)]
    mcmc = [f"results/references/{system}/mcmc_{size}_free_energy.csv" for size in sizes(system)]
    return exact + mcmc + neural_tables(system)


def phase_diagram_inputs(wildcards):
    """Canonical free energies per concentration (at the ordered compositions the sum over the
    phases' branches), the heating scans and free-energy crossings (T_c) of the ordered
    compositions, the semi-grand scans up and down (if any temperature) and the composition
    histograms of the VCSGC scans (one per temperature), whose F(c) the analysis finds."""
    c = config["phase_diagram"]
    canonical = [f"results/phase_diagram/canonical_x{x:g}_{'phase_sum' if x in c['heating_concentrations'] else 'free_energy'}.csv"
                 for x in c["concentrations"]]
    heating = [f"results/phase_diagram/{kind}_x{x:g}.csv" for x in c["heating_concentrations"]
               for kind in ("heating", "transition")]
    directions = ("up", "down") if c["semi_grand_temperatures"] else ()
    return (canonical + heating + [f"results/phase_diagram/semi_grand_{d}.csv" for d in directions]
            + [path.replace(".csv", "_histograms.csv") for path in vcsgc_tables(wildcards)])


def vcsgc_tables(wildcards):
    """The VCSGC phi scans, one per vcsgc_temperatures."""
    return [f"results/phase_diagram/vcsgc_T{t:g}.csv" for t in config["phase_diagram"]["vcsgc_temperatures"]]


def phase_diagram_structures(wildcards):
    """Canonical-scan configurations of the ordered compositions, matched to the prototypes."""
    return [f"results/phase_diagram/canonical_x{x:g}.extxyz" for x in config["phase_diagram"]["heating_concentrations"]]


def phase_diagram_cell(wildcards):
    """The phase-diagram cell as the figure states it."""
    c = config["phase_diagram"]
    return f"{c['lattice']} {size_tag(c['size'])}, {cell_sites(c['lattice'], c['size'])} sites"


def neural_pd_system_block(wildcards):
    """The canonical system block of the neural F(x, T) at one composition."""
    return NEURAL_PD.system_block(float(wildcards.x))


def neural_pd_training_block(wildcards):
    """The one conditioned run's training settings: the training section, the block's overrides, the grid's ranges."""
    return NEURAL_PD.training_block(config["training"], config["seed"])


def neural_pd_first_system(wildcards):
    """The system file the conditioned model is trained and sampled with (its first composition;
    the model reads the composition of each point from its conditioning)."""
    return f"results/config/neural_phase_diagram/x{NEURAL_PD.concentrations[0]:g}.json"


def neural_pd_alloy(wildcards):
    return [f"results/ce/{NEURAL_PD.alloy}.json"]


def neural_pd_finetune_steps(wildcards):
    """Fine-tuning steps of `lattherm neural grid` on one cell: the block's on the transfer cell, none
    on the training cell."""
    transfer = NEURAL_PD.transfer_size is not None and wildcards.size == size_tag(NEURAL_PD.transfer_size)
    return NEURAL_PD.finetune_steps if transfer else 0


def neural_pd_grids(wildcards):
    """The neural F(x, T) tables of the training cell and the transfer cell."""
    return [f"results/phase_diagram/neural/{NEURAL_PD.model}/grid_{size_tag(size)}.csv" for size in NEURAL_PD.sizes]


def neural_pd_references(wildcards):
    """Enumeration at every composition on the training cell; MCMC + MBAR on the transfer cell."""
    xs = [f"{x:g}" for x in NEURAL_PD.concentrations]
    train = size_tag(NEURAL_PD.train_size)
    tables = [f"results/phase_diagram/neural/exact_x{x}_{train}.csv" for x in xs]
    if NEURAL_PD.transfer_size is not None:
        transfer = size_tag(NEURAL_PD.transfer_size)
        tables += [f"results/phase_diagram/neural/mcmc_x{x}_{transfer}_free_energy.csv" for x in xs]
    return tables


def snapshot_inputs(wildcards):
    """The first training run of each system with neural runs and a lattice to draw, and the files
    to rebuild its system."""
    trained = [s for s in SYSTEMS if runs(s) and SYSTEMS[s].lattice is not None]
    return {
        "checkpoints": [f"results/neural/{s}/{models_of(s)[0]}/{next(iter(runs(s)))}/checkpoint.pt" for s in trained],
        "systems": [f"results/config/systems/{s}.json" for s in trained],
        "alloys": sorted({path for s in trained for path in alloy_files(s)}),
    }


def final_outputs():
    """Every alloy's fit and the figures the config has data for (a Gaussian spin-glass family's
    figure brings its equilibration check, the identity table)."""
    figures = ["free_energy_error", "thermodynamics"]
    figures += ["ess_vs_size"] if any(runs(s) for s in SYSTEMS) else []
    figures += ["snapshots"] if snapshot_inputs(None)["checkpoints"] else []
    figures += ["phase_diagram"] if "phase_diagram" in config else []
    figures += ["neural_free_energy"] if NEURAL_PD is not None else []
    figures += [f"spin_glass_{family}" for family in SPIN_GLASS_FAMILIES]
    outputs = [f"results/ce/{alloy}/hull.png" for alloy in config["alloys"]]
    return outputs + [f"results/figures/{name}.{ext}" for name in figures for ext in ("png", "pdf")]
