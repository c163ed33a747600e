"""Helpers shared by all rules: config -> file names, command-line arguments and YAML specs.

Rules call these functions instead of lambdas so that every bit of logic is named, documented
and testable in one place.
"""

import yaml

from lattherm.io import write_text

SYSTEMS = ("ising", "cuau")


wildcard_constraints:
    system="ising|cuau",
    size=r"\d+(x\d+)+",
    tag=r"all|T[0-9.]+",
    x=r"[0-9.]+",
    dmu=r"-?[0-9.]+",


# -- names --------------------------------------------------------------------------------
def size_tag(size):
    """[4, 4] -> "4x4" (the {size} wildcard)."""
    return "x".join(str(int(n)) for n in size)


def parse_size(tag):
    """"4x4" -> [4, 4]."""
    return [int(n) for n in tag.split("x")]


def n_sites(system, tag):
    sites = 1
    for n in parse_size(tag):
        sites *= n
    # Primitive cells hold one site; conventional cubic cells four (FCC) or two (BCC).
    basis = {"fcc_cubic": 4, "bcc_cubic": 2}.get(config["cuau"]["lattice"], 1) if system == "cuau" else 1
    return sites * basis


def train_size(system):
    return size_tag(config[system]["train_size"])


def transfer_sizes(system):
    return [size_tag(s) for s in config[system]["transfer_sizes"]]


def number_tag(value):
    """A float as it appears in file names: 0.25 -> "0.25", 300.0 -> "300"."""
    return f"{float(value):g}"


def training_tags(system):
    """One training run per temperature ("T2.269"), or one conditioned run ("all")."""
    if config["neural"]["conditioned"]:
        return ["all"]
    return [f"T{number_tag(t)}" for t in config["neural"]["temperatures"][system]]


def tag_temperatures(system, tag):
    """Temperatures at which the model of a training run is sampled."""
    if tag == "all":
        return config[system]["temperatures"]
    return [float(tag[1:])]


def enumerable(system):
    return n_sites(system, train_size(system)) <= config["references"]["enumerate_max_sites"]


def floats(values):
    """Command-line form of a list of numbers."""
    return ",".join(repr(float(v)) for v in values)


# -- specs written to YAML by the small `*_yaml` rules -------------------------------------
def write_yaml(path, data):
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def system_spec(wildcards, input):
    """The system YAML read by lattherm.systems.build_system."""
    size = parse_size(wildcards.size)
    if wildcards.system == "ising":
        c = config["ising"]
        return {"model": "ising", "lattice": "square", "size": size, "J": c["J"], "h": c["h"]}
    c = config["cuau"]
    spec = {
        "model": "cluster_expansion",
        "lattice": c["lattice"],
        "size": size,
        "ce_file": str(input.ce),
        "a": config["ce"]["lattice_constant"],
        "species": config["ce"]["species"],
        "ensemble": c["ensemble"],
    }
    spec.update({key: c[key] for key in ("concentration", "dmu") if key in c})
    return spec


def ce_fit_args(wildcards):
    c = config["ce"]
    args = f"--species {','.join(c['species'])} --lattice {c['lattice']} --lattice-constant {c['lattice_constant']}"
    return args + (f" --cutoffs {floats(c['cutoffs'])}" if c["cutoffs"] else "")


def key_order_free(section):
    """A config section with its keys sorted, recursively. Snakemake compares params as written,
    so without this, merely reordering the keys of a config file would rerun every job."""
    if isinstance(section, dict):
        return {key: key_order_free(section[key]) for key in sorted(section)}
    if isinstance(section, list):
        return [key_order_free(item) for item in section]
    return section


def system_params(wildcards):
    """Only the config section of this system (so other sections do not trigger reruns)."""
    return key_order_free(config[wildcards.system])


def system_inputs(wildcards):
    return {"ce": "results/ce/cuau.json"} if wildcards.system == "cuau" else {}


def model_params(wildcards):
    """The model section, with one conditioning input (beta) when one model covers all temperatures."""
    return key_order_free(dict(config["models"][wildcards.model], n_cond=int(config["neural"]["conditioned"])))


def training_spec(wildcards):
    """The training YAML: the training section, the seed and this run's temperature(s)."""
    spec = dict(config["training"], seed=config["seed"])
    temperatures = tag_temperatures(wildcards.system, wildcards.tag)
    if wildcards.tag == "all":
        spec["temperature_range"] = [min(temperatures), max(temperatures)]
    else:
        spec["temperature"] = temperatures[0]
    return key_order_free(spec)


# -- inputs of the analysis rules -----------------------------------------------------------
def exact_temperatures(system):
    return sorted(set(config[system]["temperatures"]) | set(config[system]["reference_temperatures"]))


def comparison_tables_of(system):
    """Every table compared against the exact references: (label, path) with label METHOD:SIZE."""
    train, sizes = train_size(system), [train_size(system)] + transfer_sizes(system)
    tables = [(f"mcmc:{size}", f"results/references/{system}/mcmc_free_energy_{size}.csv") for size in sizes]
    if kaufman_applies(system) and enumerable(system):
        # Enumeration of the training cell checks Kaufman (and the Hamiltonian) end to end.
        tables.append((f"enumeration:{train}", f"results/references/ising/enumeration_{train}.csv"))
    for model in config["neural"]["models"]:
        for tag in training_tags(system):
            run = f"results/neural/{system}/{model}/{tag}"
            tables.append((f"{model}:{train}", f"{run}/samples_{train}.csv"))
            if transferable(model):
                tables += [(f"{model}:{size}", f"{run}/transfer_{size}.csv") for size in transfer_sizes(system)]
    return tables


def transferable(model):
    """Only lattice-aware models run on a larger cell; MADE's weights are tied to its size."""
    return config["models"][model]["kind"] == "transformer"


def kaufman_applies(system):
    """Kaufman's solution is exact for the zero-field ferromagnetic square-lattice Ising model."""
    return system == "ising" and config["ising"]["h"] == 0 and config["ising"]["J"] > 0


def exact_references_of(system):
    """Exact references by cell size, by capability: Kaufman at every size where it applies,
    else enumeration of a training cell small enough (other cells have MCMC only)."""
    if kaufman_applies(system):
        sizes = [train_size(system)] + transfer_sizes(system)
        return {size: f"results/references/ising/kaufman_{size}.csv" for size in sizes}
    size = train_size(system)
    return {size: f"results/references/{system}/enumeration_{size}.csv"} if enumerable(system) else {}


def comparison_inputs(wildcards):
    s = wildcards.system
    return list(exact_references_of(s).values()) + [path for _, path in comparison_tables_of(s)]


def comparison_args(wildcards):
    s = wildcards.system
    args = [f"--reference {size}={path}" for size, path in exact_references_of(s).items()]
    args += [f"--table {label}={path}" for label, path in comparison_tables_of(s)]
    return " ".join(args)


def mchammer_canonical_tables():
    """Canonical free-energy tables keyed by Au fraction (as written in the file name)."""
    c = config["references"]["mchammer"]
    return {number_tag(x): f"results/references/cuau/mchammer/canonical_free_energy_x{number_tag(x)}.csv" for x in c["concentrations"]}


def mchammer_semi_grand_tables():
    """Semi-grand scan tables keyed by dmu."""
    c = config["references"]["mchammer"]
    return {number_tag(d): f"results/references/cuau/mchammer/semi_grand_dmu{number_tag(d)}.csv" for d in c["dmus"]}


def phase_diagram_inputs(wildcards):
    return list(mchammer_canonical_tables().values()) + list(mchammer_semi_grand_tables().values())


def phase_diagram_args(wildcards):
    args = [f"--canonical {x}={path}" for x, path in mchammer_canonical_tables().items()]
    args += [f"--semi-grand {dmu}={path}" for dmu, path in mchammer_semi_grand_tables().items()]
    return " ".join(args)


def comparison_tables():
    return [f"results/analysis/{s}/free_energy_comparison.csv" for s in config["neural"]["systems"]]


def thermo_tables():
    """MCMC scans of the training cells, keyed by system."""
    return {s: f"results/references/{s}/mcmc_{train_size(s)}.csv" for s in SYSTEMS}


def thermo_args(wildcards):
    return " ".join(f"{s}={path}" for s, path in thermo_tables().items())


def snapshot_runs():
    """The first training run of each neural system, used for configuration snapshots."""
    return {s: f"results/neural/{s}/{config['neural']['models'][0]}/{training_tags(s)[0]}" for s in config["neural"]["systems"]}


def snapshot_inputs(wildcards):
    runs = snapshot_runs()
    inputs = {f"{s}_checkpoint": f"{run}/checkpoint.pt" for s, run in runs.items()}
    inputs.update({f"{s}_system": f"results/systems/{s}/{train_size(s)}.yaml" for s in runs})
    return inputs


def snapshot_args(wildcards, input):
    """Paired --checkpoint/--system options, one pair per system."""
    pairs = [(input[f"{s}_checkpoint"], input[f"{s}_system"]) for s in snapshot_runs()]
    return " ".join(f"--checkpoint {checkpoint} --system {system}" for checkpoint, system in pairs)


FIGURES = ["free_energy_error", "thermodynamics", "ess_vs_size", "phase_diagram", "snapshots"]


def final_outputs():
    outputs = ["results/ce/metrics.json", "results/ce/hull.png"]
    outputs += [f"results/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")]
    return outputs


def ce_database_arg(ce):
    return f"--database {ce['database']}" if ce["source"] == "database" else ""


# -- command-line arguments of the reference rules ------------------------------------------
def size_args(wildcards):
    """"4x4" -> "4 4"."""
    return " ".join(str(n) for n in parse_size(wildcards.size))


def enumeration_temperatures(wildcards):
    return floats(exact_temperatures(wildcards.system))


def integration_grid(temperatures):
    """Temperatures of a scan that is integrated thermodynamically: it starts at T = inf (beta = 0)."""
    return floats([float("inf")] + list(temperatures))


def reference_temperatures(wildcards):
    return integration_grid(config[wildcards.system]["reference_temperatures"])


def mcmc_move(wildcards):
    return config[wildcards.system]["move"]


def mchammer_args(wildcards):
    c = config["references"]["mchammer"]
    return (
        f"--size {' '.join(str(n) for n in c['size'])} --lattice {c['lattice']}"
        f" --steps-per-site {c['steps_per_site']} --seed {config['seed']}"
        f" --species {','.join(config['ce']['species'])}"
    )


def mchammer_canonical_temperatures(wildcards):
    return integration_grid(config["references"]["mchammer"]["temperatures"])


def mchammer_semi_grand_temperatures(wildcards):
    return floats(config["references"]["mchammer"]["temperatures"])


# -- neural rules -------------------------------------------------------------------------
def train_system_yaml(wildcards):
    return f"results/systems/{wildcards.system}/{train_size(wildcards.system)}.yaml"


def run_temperatures(wildcards):
    return floats(tag_temperatures(wildcards.system, wildcards.tag))
