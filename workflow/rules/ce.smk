# Stage 1: each alloy's cluster expansion (CuAu published ECIs, or a fit to EMT / a user database).


rule ce_fit:
    input:
        alloy="results/config/alloys/{alloy}.json",
    output:
        ce="results/ce/{alloy}.json",
        metrics="results/ce/{alloy}/metrics.json",
        ground_states="results/ce/{alloy}/ground_states.csv",
        hull=report("results/ce/{alloy}/hull.png", caption="../report/hull.rst", category="1. Cluster expansion"),
    log:
        "logs/ce/fit_{alloy}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm ce fit --alloy {input.alloy} --out-ce {output.ce} --out-metrics {output.metrics}"
        " --out-ground-states {output.ground_states} --out-hull-plot {output.hull} > {log} 2>&1"
