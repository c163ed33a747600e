"""lattherm: thermodynamics of lattice models from neural samplers and MCMC.

Stages, each generic over the named systems (and alloys) of the config: (1) cluster expansions,
(2) exact and MCMC references, (3) neural training on small cells, (4) sampling and transfer to
larger cells, (5) analysis and phase diagram, (6) figures.
Run `snakemake --cores all` (default config.yaml), `--configfile config/tiny.yaml` for a smoke
test, `--configfile config/paper.yaml --profile profiles/slurm` on a cluster;
`snakemake --report report.html` collects the figures with their captions, and the config,
package versions and job runtimes of the run.
"""

import sys

from snakemake.utils import min_version

from lattherm.config import check_workflow_config
from lattherm.errors import LatthermError
from lattherm.slurm import check_status_polling

min_version("9.0")


# A --configfile replaces config.yaml instead of being merged into it: keys the user leaves out
# take the schema's defaults, not the default run's values. (--config key=value still overrides.)
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


try:
    check_workflow_config(config)
except LatthermError as exc:  # one line naming the field, before any job
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)


# On a SLURM cluster, the plugin's job status polling is checked before any job: if it cannot
# work here, the run stops with one line naming the setting to change, instead of hanging.
onstart:
    try:
        check_status_polling(workflow)
    except LatthermError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


include: "workflow/rules/blocks.smk"
include: "workflow/rules/ce.smk"
include: "workflow/rules/references.smk"
include: "workflow/rules/neural.smk"
include: "workflow/rules/neural_phase_diagram.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
        rules.report_provenance.output,
    default_target: True
