# Stage 5: free-energy comparison against exact references, an alloy's phase diagram, and the disorder
# averages of spin-glass families.


rule compare_free_energies:
    input:
        comparison_inputs,
    output:
        "results/analysis/{system}/free_energy_comparison.csv",
    log:
        "logs/analysis/compare_{system}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis compare {input} --out {output} > {log} 2>&1"


rule phase_diagram:
    input:
        tables=phase_diagram_inputs,
        structures=phase_diagram_structures,
    output:
        boundaries="results/analysis/phase_diagram/phase_boundaries.csv",
        phases="results/analysis/phase_diagram/phases.csv",
        transitions="results/analysis/phase_diagram/transitions.csv",
        semi_grand="results/analysis/phase_diagram/semi_grand_check.csv",
        hysteresis="results/analysis/phase_diagram/hysteresis.csv",
        vcsgc_check="results/analysis/phase_diagram/vcsgc_check.csv",
        vcsgc_binodals="results/analysis/phase_diagram/vcsgc_binodals.csv",
    params:
        tolerance=lookup(dpath="phase_diagram/hull_tolerance", within=config, default=None),  # the rule runs only with the block
    log:
        "logs/analysis/phase_diagram.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis phase-diagram {input.tables} {input.structures} --tolerance {params.tolerance}"
        " --out-boundaries {output.boundaries} --out-phases {output.phases}"
        " --out-transitions {output.transitions} --out-semi-grand {output.semi_grand}"
        " --out-hysteresis {output.hysteresis} --out-vcsgc-check {output.vcsgc_check}"
        " --out-vcsgc-binodals {output.vcsgc_binodals} > {log} 2>&1"


rule disorder_average:
    input:
        family_inputs,
    output:
        thermodynamics="results/analysis/spin_glass/{family}/thermodynamics.csv",
        overlap="results/analysis/spin_glass/{family}/overlap.csv",
    log:
        "logs/analysis/disorder_average_{family}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis disorder-average {input} --family {wildcards.family}"
        " --out-thermodynamics {output.thermodynamics} --out-overlap {output.overlap} > {log} 2>&1"


# A Gaussian family's equilibration check: the energy / link-overlap identity, which parallel
# tempering meets only once equilibrated (read by the figures of IDENTITY_FAMILIES; for
# +-J couplings the command stops with one line: the identity does not hold there).
rule link_overlap_identity:
    input:
        family_summaries,
    output:
        report("results/analysis/spin_glass/{family}/identity.csv", caption="../report/link_overlap_identity.rst",
               category="6. Spin glasses", subcategory="{family}"),
    log:
        "logs/analysis/link_overlap_identity_{family}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis disorder-average {input} --family {wildcards.family} --out-identity {output} > {log} 2>&1"
