# Stage 6: figures (PNG for the report, PDF for print), each with an rst caption.


rule figure_free_energy_error:
    input:
        expand("results/analysis/{system}/free_energy_comparison.csv", system=SYSTEMS),
    output:
        png=report("results/figures/free_energy_error.png", caption="../report/free_energy_error.rst", category="2. Free energies"),
        pdf="results/figures/free_energy_error.pdf",
    log:
        "logs/figures/free_energy_error.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis figure-free-energy-error {input} --out {output.png} --out {output.pdf} > {log} 2>&1"


rule figure_thermodynamics:
    input:
        [f"results/references/{system}/mcmc_{sizes(system)[0]}.csv" for system in SYSTEMS],
    output:
        png=report("results/figures/thermodynamics.png", caption="../report/thermodynamics.rst", category="3. Thermodynamics"),
        pdf="results/figures/thermodynamics.pdf",
    log:
        "logs/figures/thermodynamics.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis figure-thermodynamics {input} --out {output.png} --out {output.pdf} > {log} 2>&1"


rule figure_ess_vs_size:
    input:
        expand("results/analysis/{system}/free_energy_comparison.csv", system=SYSTEMS),
    output:
        png=report("results/figures/ess_vs_size.png", caption="../report/ess_vs_size.rst", category="2. Free energies"),
        pdf="results/figures/ess_vs_size.pdf",
    log:
        "logs/figures/ess_vs_size.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis figure-ess {input} --out {output.png} --out {output.pdf} > {log} 2>&1"


rule figure_phase_diagram:
    input:
        boundaries="results/analysis/phase_diagram/phase_boundaries.csv",
        phases="results/analysis/phase_diagram/phases.csv",
        transitions="results/analysis/phase_diagram/transitions.csv",
        semi_grand="results/analysis/phase_diagram/semi_grand_check.csv",
        hysteresis="results/analysis/phase_diagram/hysteresis.csv",
        vcsgc_check="results/analysis/phase_diagram/vcsgc_check.csv",
        vcsgc_binodals="results/analysis/phase_diagram/vcsgc_binodals.csv",
        vcsgc=vcsgc_tables,
    output:
        png=report("results/figures/phase_diagram.png", caption="../report/phase_diagram.rst", category="4. CuAu phase diagram"),
        pdf="results/figures/phase_diagram.pdf",
    params:
        cell=phase_diagram_cell,
    log:
        "logs/figures/phase_diagram.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis figure-phase-diagram {input.vcsgc} --boundaries {input.boundaries} --phases {input.phases}"
        " --transitions {input.transitions} --semi-grand {input.semi_grand} --hysteresis {input.hysteresis}"
        " --vcsgc-check {input.vcsgc_check} --vcsgc-binodals {input.vcsgc_binodals}"
        " --cell '{params.cell}'"
        " --out {output.png} --out {output.pdf} > {log} 2>&1"


rule figure_snapshots:
    input:
        unpack(snapshot_inputs),
    output:
        png=report("results/figures/snapshots.png", caption="../report/snapshots.rst", category="5. Configurations"),
        pdf="results/figures/snapshots.pdf",
    params:
        seed=config["seed"],
    log:
        "logs/figures/snapshots.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/neural.yaml"
    shell:
        "lattherm analysis figure-snapshots {input.checkpoints} --systems results/config/systems --seed {params.seed}"
        " --out {output.png} --out {output.pdf} > {log} 2>&1"


rule figure_spin_glass:
    input:
        thermodynamics="results/analysis/spin_glass/{family}/thermodynamics.csv",
        overlap="results/analysis/spin_glass/{family}/overlap.csv",
        identity=family_identity,
    output:
        png=report("results/figures/spin_glass_{family}.png", caption="../report/spin_glass.rst",
                   category="6. Spin glasses", subcategory="{family}"),
        pdf="results/figures/spin_glass_{family}.pdf",
    log:
        "logs/figures/spin_glass_{family}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/lattherm.yaml"
    shell:
        "lattherm analysis figure-spin-glass {input.identity} --thermodynamics {input.thermodynamics}"
        " --overlap {input.overlap} --out {output.png} --out {output.pdf} > {log} 2>&1"
