# Stage 1: the alloy's cluster expansion (CuAu published ECIs, or a fit to EMT / a user database).


rule ce_fit:
    output:
        ce="results/ce/cuau.json",
        metrics="results/ce/metrics.json",
        ground_states="results/ce/ground_states.csv",
        hull=report("results/ce/hull.png", caption="../report/hull.rst", category="1. Cluster expansion"),
    params:
        source=config["ce"]["source"],
        database=ce_database_arg(config["ce"]),
        relax="--relax" if config["ce"]["relax"] else "--no-relax",
        max_atoms=config["ce"]["max_atoms"],
        alloy=ce_fit_args,
    log:
        "logs/ce/fit.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    cache: "omit-software"
    conda:
        "../../envs/ce.yaml"
    shell:
        "lattherm ce fit --source {params.source} {params.database} {params.relax} {params.alloy}"
        " --max-atoms {params.max_atoms} --out-ce {output.ce} --out-metrics {output.metrics}"
        " --out-ground-states {output.ground_states} --out-hull-plot {output.hull} > {log} 2>&1"
