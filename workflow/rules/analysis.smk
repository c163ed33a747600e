# Stage 5: free-energy comparison against exact references, and the CuAu phase diagram.


rule compare_free_energies:
    input:
        comparison_inputs,
    output:
        "results/analysis/{system}/free_energy_comparison.csv",
    params:
        tables=comparison_args,
    log:
        "logs/analysis/compare_{system}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis compare --name {wildcards.system} {params.tables} --out {output} > {log} 2>&1"


rule phase_diagram:
    input:
        phase_diagram_inputs,
    output:
        boundaries="results/analysis/cuau/phase_boundaries.csv",
        order_disorder="results/analysis/cuau/order_disorder.csv",
        semi_grand="results/analysis/cuau/semi_grand_check.csv",
    params:
        tables=phase_diagram_args,
        tolerance=config["analysis"]["hull_tolerance"],
    log:
        "logs/analysis/phase_diagram.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis phase-diagram {params.tables}"
        " --tolerance {params.tolerance} --out-boundaries {output.boundaries}"
        " --out-order-disorder {output.order_disorder} --out-semi-grand {output.semi_grand} > {log} 2>&1"
