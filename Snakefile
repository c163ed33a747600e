"""lattherm: thermodynamics of lattice models from neural samplers and MCMC.

Stages: (1) CuAu cluster expansion, (2) exact and MCMC references, (3) neural training on small
cells, (4) sampling and transfer to larger cells, (5) analysis and phase diagram, (6) figures.
Run `snakemake --cores all` (default config.yaml), `--configfile config/tiny.yaml` for a smoke
test, `--configfile config/paper.yaml --profile profiles/slurm` on a cluster;
`snakemake --report report.html` collects the figures with their captions.
"""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
check_alloy_lattice()
check_transfer_sizes()


include: "workflow/rules/specs.smk"
include: "workflow/rules/ce.smk"
include: "workflow/rules/references.smk"
include: "workflow/rules/neural.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
