# The report's provenance, beside the figures: the config this run used, the versions of the
# packages it ran with, and every job's runtime (Snakemake's records of each output, and the
# benchmark files of the rules that have one). It reads Snakemake's own records, so it runs
# where Snakemake does (a local rule), after everything else.

from lattherm.provenance import write_provenance


localrules:
    report_provenance,


rule report_provenance:
    input:
        final_outputs(),
    output:
        config=report("results/report/config.yaml", caption="../report/config.rst", category="0. Provenance"),
        versions=report("results/report/versions.csv", caption="../report/versions.rst", category="0. Provenance"),
        runtimes=report("results/report/runtimes.csv", caption="../report/runtimes.rst", category="0. Provenance"),
    log:
        "logs/report/provenance.log",
    run:
        write_provenance(output, config, workflow)
