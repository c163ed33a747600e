# Stage 2: references. Exact where the system allows (Kaufman, enumeration), our batched MCMC at
# every cell size with MBAR free energies over all its samples, and the batched-MCMC scans of an
# alloy for its phase diagram: canonical parallel-tempering scans (MBAR free energies), semi-grand
# scans up and down, VCSGC phi scans (dF/dc and F(c), also inside two-phase regions); at the
# ordered compositions the ordered and disordered branches, whose free energies cross at T_c and
# whose sum replaces the scan's F below it (rule phase_sum).


rule exact_reference:
    input:
        system="results/config/systems/{system}.json",
        alloy=lambda wildcards: alloy_files(wildcards.system),
    output:
        "results/references/{system}/exact_{size}.csv",
    params:
        enumerate_max_sites=config["exact"]["enumerate_max_sites"],
    log:
        "logs/references/exact_{system}_{size}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    cache: "omit-software"
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm exact reference --system {input.system} --size {wildcards.size}"
        " --enumerate-max-sites {params.enumerate_max_sites} --out {output} > {log} 2>&1"


rule mcmc_run:
    input:
        system="results/config/systems/{system}.json",
        alloy=lambda wildcards: alloy_files(wildcards.system),
    output:
        table="results/references/{system}/mcmc_{size}.csv",
        samples="results/references/{system}/mcmc_{size}_samples.parquet",
    params:
        seed=config["seed"],
    log:
        "logs/references/mcmc_{system}_{size}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    cache: "omit-software"
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc run --system {input.system} --size {wildcards.size} --seed {params.seed}"
        " --out {output.table} --out-samples {output.samples} > {log} 2>&1"


rule mcmc_free_energy:
    input:
        table="results/references/{system}/mcmc_{size}.csv",
        samples="results/references/{system}/mcmc_{size}_samples.parquet",
    output:
        "results/references/{system}/mcmc_{size}_free_energy.csv",
    log:
        "logs/references/free_energy_{system}_{size}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc integrate --table {input.table} --samples {input.samples} --out {output} > {log} 2>&1"


rule canonical_free_energy:
    input:
        table="results/phase_diagram/canonical_x{x}.csv",
        samples="results/phase_diagram/canonical_x{x}_samples.parquet",
    output:
        "results/phase_diagram/canonical_x{x}_free_energy.csv",
    log:
        "logs/phase_diagram/free_energy_x{x}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc integrate --table {input.table} --samples {input.samples} --out {output} > {log} 2>&1"


rule phase_sum:
    input:
        free="results/phase_diagram/canonical_x{x}_free_energy.csv",
        branches="results/phase_diagram/branches_x{x}.csv",
    output:
        "results/phase_diagram/canonical_x{x}_phase_sum.csv",
    log:
        "logs/phase_diagram/phase_sum_x{x}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc phase-sum --free {input.free} --branches {input.branches} --out {output} > {log} 2>&1"


rule canonical_scan:
    input:
        settings="results/config/phase_diagram.json",
        alloy=f"results/ce/{config.get('phase_diagram', {}).get('alloy')}.json",
    output:
        table="results/phase_diagram/canonical_x{x}.csv",
        samples="results/phase_diagram/canonical_x{x}_samples.parquet",
        structures="results/phase_diagram/canonical_x{x}.extxyz",
    params:
        seed=config["seed"],
    log:
        "logs/phase_diagram/canonical_x{x}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm mcmc canonical --settings {input.settings} --concentration {wildcards.x} --seed {params.seed}"
        " --out {output.table} --out-samples {output.samples} --out-structures {output.structures} > {log} 2>&1"


rule transition:
    input:
        settings="results/config/phase_diagram.json",
        alloy=f"results/ce/{config.get('phase_diagram', {}).get('alloy')}.json",
    output:
        crossing="results/phase_diagram/transition_x{x}.csv",
        heating="results/phase_diagram/heating_x{x}.csv",
        branches="results/phase_diagram/branches_x{x}.csv",
    params:
        seed=config["seed"],
    log:
        "logs/phase_diagram/transition_x{x}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm mcmc transition --settings {input.settings} --concentration {wildcards.x} --seed {params.seed}"
        " --out {output.crossing} --out-heating {output.heating} --out-branches {output.branches} > {log} 2>&1"


rule semi_grand_scan:
    input:
        settings="results/config/phase_diagram.json",
        alloy=f"results/ce/{config.get('phase_diagram', {}).get('alloy')}.json",
    output:
        "results/phase_diagram/semi_grand_{direction}.csv",
    params:
        seed=config["seed"],
    log:
        "logs/phase_diagram/semi_grand_{direction}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm mcmc semi-grand --settings {input.settings} --direction {wildcards.direction} --seed {params.seed}"
        " --out {output} > {log} 2>&1"


rule vcsgc_scan:
    input:
        settings="results/config/phase_diagram.json",
        alloy=f"results/ce/{config.get('phase_diagram', {}).get('alloy')}.json",
    output:
        table="results/phase_diagram/vcsgc_T{t}.csv",
        histograms="results/phase_diagram/vcsgc_T{t}_histograms.csv",
    params:
        seed=config["seed"],
    log:
        "logs/phase_diagram/vcsgc_T{t}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm mcmc vcsgc --settings {input.settings} --temperature {wildcards.t} --seed {params.seed}"
        " --out {output.table} --out-histograms {output.histograms} > {log} 2>&1"


# Spin glasses: the replica-overlap distribution P(q), exact where enumerated, and from
# parallel tempering (chains paired into replicas) with its exchange acceptance and
# equilibration check.
rule overlap_exact:
    input:
        system="results/config/systems/{system}.json",
    output:
        "results/references/{system}/overlap_exact_{size}.csv",
    params:
        enumerate_max_sites=config["exact"]["enumerate_max_sites"],
    log:
        "logs/references/overlap_exact_{system}_{size}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    cache: "omit-software"
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm exact overlap --system {input.system} --size {wildcards.size}"
        " --enumerate-max-sites {params.enumerate_max_sites} --out {output} > {log} 2>&1"


rule overlap_tempering:
    input:
        system="results/config/systems/{system}.json",
    output:
        table="results/references/{system}/overlap_pt_{size}.csv",
        summary="results/references/{system}/overlap_pt_{size}_summary.csv",
    params:
        seed=config["seed"],
    log:
        "logs/references/overlap_pt_{system}_{size}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    cache: "omit-software"
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc tempering --system {input.system} --size {wildcards.size} --seed {params.seed}"
        " --out {output.table} --out-summary {output.summary} > {log} 2>&1"
