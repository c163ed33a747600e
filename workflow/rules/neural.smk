# Stages 3 and 4: variational training of neural samplers on a system's training cell,
# importance-sampled estimates there, and transfer (with optional fine-tuning) to its larger cells.


rule neural_train:
    input:
        system="results/config/systems/{system}.json",
        alloy=lambda wildcards: alloy_files(wildcards.system),
        model="results/config/models/{model}.json",
        training="results/config/training/{system}/{tag}.json",
    output:
        checkpoint="results/neural/{system}/{model}/{tag}/checkpoint.pt",
        log="results/neural/{system}/{model}/{tag}/log.csv",
        summary="results/neural/{system}/{model}/{tag}/summary.json",
    params:
        out_dir=subpath(output.checkpoint, parent=True),
    log:
        "logs/neural/train_{system}_{model}_{tag}.log",
    # the longest chains of jobs (training, then transfer): start them first so no core idles at the end
    priority: 10
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    cache: "omit-software"
    conda:
        "../../envs/neural.yaml"
    shell:
        "lattherm neural train --system {input.system} --model {input.model}"
        " --training {input.training} --out-dir {params.out_dir} > {log} 2>&1"


rule neural_sample:
    input:
        checkpoint="results/neural/{system}/{model}/{tag}/checkpoint.pt",
        system="results/config/systems/{system}.json",
        alloy=lambda wildcards: alloy_files(wildcards.system),
    output:
        "results/neural/{system}/{model}/{tag}/samples.csv",
    params:
        samples=config["sampling"]["samples"],
        lattice_symmetric=str(config["sampling"]["lattice_symmetric"]).lower(),
    log:
        "logs/neural/sample_{system}_{model}_{tag}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/neural.yaml"
    shell:
        "lattherm neural sample --checkpoint {input.checkpoint} --system {input.system}"
        " --samples {params.samples} --lattice-symmetric {params.lattice_symmetric} --method {wildcards.model}"
        " --out {output} > {log} 2>&1"


rule neural_transfer:
    input:
        checkpoint="results/neural/{system}/{model}/{tag}/checkpoint.pt",
        system="results/config/systems/{system}.json",
        alloy=lambda wildcards: alloy_files(wildcards.system),
    output:
        "results/neural/{system}/{model}/{tag}/transfer_{size}.csv",
    params:
        finetune_steps=config["transfer"]["finetune_steps"],
        samples=config["sampling"]["samples"],
    log:
        "logs/neural/transfer_{system}_{model}_{tag}_{size}.log",
    benchmark:
        "benchmarks/neural/transfer_{system}_{model}_{tag}_{size}.tsv"
    priority: 10
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/neural.yaml"
    shell:
        "lattherm neural sample --checkpoint {input.checkpoint} --system {input.system} --size {wildcards.size}"
        " --finetune-steps {params.finetune_steps} --samples {params.samples} --method {wildcards.model}"
        " --out {output} > {log} 2>&1"


rule neural_overlap:
    input:
        checkpoint="results/neural/{system}/{model}/{tag}/checkpoint.pt",
        system="results/config/systems/{system}.json",
    output:
        "results/neural/{system}/{model}/{tag}/overlap.csv",
    params:
        samples=config["sampling"]["samples"],
    log:
        "logs/neural/overlap_{system}_{model}_{tag}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/neural.yaml"
    shell:
        "lattherm neural overlap --checkpoint {input.checkpoint} --system {input.system}"
        " --samples {params.samples} --method {wildcards.model} --out {output} > {log} 2>&1"
