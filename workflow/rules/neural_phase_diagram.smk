# Neural F(x, T) of an alloy (the neural_phase_diagram block): one transformer conditioned on
# temperature and composition, trained on the canonical training cell, sampled at every grid point
# there (against enumeration) and, transferred and fine-tuned once, on the transfer cell (against
# batched MCMC scans from T = inf with MBAR free energies).


localrules:
    neural_phase_diagram_system,
    neural_phase_diagram_training,


rule neural_phase_diagram_system:
    output:
        "results/config/neural_phase_diagram/x{x}.json",
    params:
        block=neural_pd_system_block,
    log:
        "logs/config/neural_phase_diagram_x{x}.log",
    run:
        write_json(output[0], params.block)


rule neural_phase_diagram_training:
    output:
        "results/config/neural_phase_diagram/training.json",
    params:
        block=neural_pd_training_block,
    log:
        "logs/config/neural_phase_diagram_training.log",
    run:
        write_json(output[0], params.block)


rule neural_phase_diagram_train:
    input:
        system=neural_pd_first_system,
        alloy=neural_pd_alloy,
        model="results/config/models/{model}.json",
        training="results/config/neural_phase_diagram/training.json",
    output:
        checkpoint="results/phase_diagram/neural/{model}/checkpoint.pt",
        log="results/phase_diagram/neural/{model}/log.csv",
        summary="results/phase_diagram/neural/{model}/summary.json",
    params:
        out_dir=subpath(output.checkpoint, parent=True),
    log:
        "logs/phase_diagram/neural_train_{model}.log",
    priority: 10
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    cache: "omit-software"
    conda:
        "../../envs/neural.yaml"
    shell:
        "lattherm neural train --system {input.system} --model {input.model} --training {input.training}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule neural_phase_diagram_grid:
    input:
        checkpoint="results/phase_diagram/neural/{model}/checkpoint.pt",
        system=neural_pd_first_system,
        alloy=neural_pd_alloy,
    output:
        "results/phase_diagram/neural/{model}/grid_{size}.csv",
    params:
        concentrations=lookup(dpath="neural_phase_diagram/concentrations", within=config, default=None),  # the rule runs only with the block
        temperatures=lookup(dpath="neural_phase_diagram/temperatures", within=config, default=None),
        samples=lookup(dpath="neural_phase_diagram/samples", within=config, default=None),
        finetune_steps=neural_pd_finetune_steps,
        finetune_lr=lookup(dpath="neural_phase_diagram/finetune_lr", within=config, default=None),
        seed=config["seed"],
    log:
        "logs/phase_diagram/neural_grid_{model}_{size}.log",
    priority: 10
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/neural.yaml"
    shell:
        "lattherm neural grid --checkpoint {input.checkpoint} --system {input.system} --size {wildcards.size}"
        " --concentrations '{params.concentrations}' --temperatures '{params.temperatures}' --samples {params.samples}"
        " --finetune-steps {params.finetune_steps} --finetune-lr {params.finetune_lr} --seed {params.seed} --out {output} > {log} 2>&1"


rule neural_phase_diagram_exact:
    input:
        system="results/config/neural_phase_diagram/x{x}.json",
        alloy=neural_pd_alloy,
    output:
        "results/phase_diagram/neural/exact_x{x}_{size}.csv",
    params:
        enumerate_max_sites=config["exact"]["enumerate_max_sites"],
    log:
        "logs/phase_diagram/neural_exact_x{x}_{size}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm exact reference --system {input.system} --size {wildcards.size}"
        " --enumerate-max-sites {params.enumerate_max_sites} --out {output} > {log} 2>&1"


rule neural_phase_diagram_mcmc:
    input:
        system="results/config/neural_phase_diagram/x{x}.json",
        alloy=neural_pd_alloy,
    output:
        table="results/phase_diagram/neural/mcmc_x{x}_{size}.csv",
        samples="results/phase_diagram/neural/mcmc_x{x}_{size}_samples.parquet",
    params:
        seed=config["seed"],
    log:
        "logs/phase_diagram/neural_mcmc_x{x}_{size}.log",
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


rule neural_phase_diagram_mcmc_free_energy:
    input:
        table="results/phase_diagram/neural/mcmc_x{x}_{size}.csv",
        samples="results/phase_diagram/neural/mcmc_x{x}_{size}_samples.parquet",
    output:
        "results/phase_diagram/neural/mcmc_x{x}_{size}_free_energy.csv",
    log:
        "logs/phase_diagram/neural_mcmc_free_energy_x{x}_{size}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm mcmc integrate --table {input.table} --samples {input.samples} --out {output} > {log} 2>&1"


rule neural_free_energy:
    input:
        neural=neural_pd_grids,
        references=neural_pd_references,
    output:
        "results/phase_diagram/neural_free_energy.csv",
    params:
        neural=lambda wildcards, input: " ".join(f"--neural {path}" for path in input.neural),
        references=lambda wildcards, input: " ".join(f"--reference {path}" for path in input.references),
        ess_threshold=lookup(dpath="neural_phase_diagram/ess_threshold", within=config, default=None),  # the rule runs only with the block
    log:
        "logs/analysis/neural_free_energy.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis neural-free-energy {params.neural} {params.references}"
        " --ess-threshold {params.ess_threshold} --out {output} > {log} 2>&1"


rule figure_neural_free_energy:
    input:
        "results/phase_diagram/neural_free_energy.csv",
    output:
        png=report("results/figures/neural_free_energy.png", caption="../report/neural_free_energy.rst", category="4. CuAu phase diagram"),
        pdf="results/figures/neural_free_energy.pdf",
    params:
        alloy=lookup(dpath="neural_phase_diagram/alloy", within=config, default=None),
    log:
        "logs/figures/neural_free_energy.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis figure-neural-free-energy --table {input} --alloy {params.alloy}"
        " --out {output.png} --out {output.pdf} > {log} 2>&1"
