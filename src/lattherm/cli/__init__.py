"""The ``lattherm`` command line: one sub-command group per pipeline stage.

Snakemake rules and users call the same commands.
"""

import typer

from lattherm.cli import analysis, ce, exact, mcmc, neural

app = typer.Typer(help="Thermodynamics of lattice models from neural samplers and MCMC.", no_args_is_help=True)
app.add_typer(ce.app, name="ce", help="Cluster-expansion fitting for binary alloys (icet).")
app.add_typer(exact.app, name="exact", help="Exact references: Kaufman Ising, brute-force enumeration.")
app.add_typer(mcmc.app, name="mcmc", help="MCMC references: mchammer and batched torch samplers.")
app.add_typer(neural.app, name="neural", help="Neural samplers: training, sampling, transfer.")
app.add_typer(analysis.app, name="analysis", help="Free energies, phase diagram and figures.")
