# Stage 2: references. Exact (Kaufman for the Ising model, brute-force enumeration of small
# cells), our batched MCMC with thermodynamic integration, and icet's mchammer scans of the CE.


rule exact_kaufman:
    output:
        "results/references/ising/kaufman_{size}.csv",
    params:
        size=size_args,
        temperatures=floats(exact_temperatures("ising")),
        J=config["ising"]["J"],
    log:
        "logs/references/kaufman_{size}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm exact kaufman --size {params.size} --temperatures {params.temperatures} --J {params.J}"
        " --out {output} > {log} 2>&1"


rule exact_enumeration:
    input:
        system="results/systems/{system}/{size}.yaml",
    output:
        "results/references/{system}/enumeration_{size}.csv",
    params:
        temperatures=enumeration_temperatures,
    log:
        "logs/references/enumeration_{system}_{size}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    cache: "omit-software"
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm exact enumerate --system {input.system} --temperatures {params.temperatures}"
        " --out {output} > {log} 2>&1"


rule mcmc_run:
    input:
        system="results/systems/{system}/{size}.yaml",
    output:
        "results/references/{system}/mcmc_{size}.csv",
    params:
        temperatures=reference_temperatures,
        move=mcmc_move,
        chains=config["references"]["mcmc"]["chains"],
        sweeps=config["references"]["mcmc"]["sweeps"],
        burn_in=config["references"]["mcmc"]["burn_in"],
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
        "lattherm mcmc run --system {input.system} --temperatures {params.temperatures}"
        " --chains {params.chains} --sweeps {params.sweeps} --burn-in {params.burn_in} --move {params.move}"
        " --seed {params.seed} --out {output} > {log} 2>&1"


rule mcmc_integrate:
    input:
        "results/references/{system}/mcmc_{size}.csv",
    output:
        "results/references/{system}/mcmc_free_energy_{size}.csv",
    log:
        "logs/references/mcmc_integrate_{system}_{size}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc integrate --table {input} --out {output} > {log} 2>&1"


rule mchammer_canonical:
    input:
        ce="results/ce/cuau.json",
    output:
        "results/references/cuau/mchammer/canonical_x{x}.csv",
    params:
        args=mchammer_args,
        temperatures=mchammer_canonical_temperatures,
    log:
        "logs/references/mchammer_canonical_x{x}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm mcmc mchammer --ce {input.ce} {params.args} --temperatures {params.temperatures}"
        " --ensemble canonical"
        " --concentration {wildcards.x} --out {output} > {log} 2>&1"


rule mchammer_semi_grand:
    input:
        ce="results/ce/cuau.json",
    output:
        "results/references/cuau/mchammer/semi_grand_dmu{dmu}.csv",
    params:
        args=mchammer_args,
        temperatures=mchammer_semi_grand_temperatures,
    log:
        "logs/references/mchammer_semi_grand_dmu{dmu}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm mcmc mchammer --ce {input.ce} {params.args} --temperatures {params.temperatures}"
        " --ensemble semi_grand"
        " --dmu {wildcards.dmu} --out {output} > {log} 2>&1"


rule mchammer_integrate:
    input:
        "results/references/cuau/mchammer/canonical_x{x}.csv",
    output:
        "results/references/cuau/mchammer/canonical_free_energy_x{x}.csv",
    log:
        "logs/references/mchammer_integrate_x{x}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc integrate --table {input} --out {output} > {log} 2>&1"
