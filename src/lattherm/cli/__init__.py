"""The ``lattherm`` command line: one sub-command group per pipeline stage.

Snakemake rules and users call the same commands. A group's module is imported only when that
group runs, so a workflow job loads the libraries of its own stage (torch, icet, matplotlib)
and not those of every stage.
"""

import importlib

import click
import typer
from typer.core import TyperGroup

GROUPS = {
    "ce": "Cluster-expansion fitting for binary alloys (icet).",
    "exact": "Exact references: Kaufman Ising, brute-force enumeration.",
    "mcmc": "MCMC references: mchammer and batched torch samplers.",
    "neural": "Neural samplers: training, sampling, transfer.",
    "analysis": "Free energies, phase diagram and figures.",
}


class LazyGroups(TyperGroup):
    """Lists every group but imports ``lattherm.cli.<name>`` only when it is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(GROUPS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in GROUPS:
            return None
        command = typer.main.get_group(importlib.import_module(f"lattherm.cli.{name}").app)
        command.name, command.help = name, GROUPS[name]
        return command


app = typer.Typer(cls=LazyGroups, help="Thermodynamics of lattice models from neural samplers and MCMC.",
                  no_args_is_help=True)


@app.callback()
def main() -> None:
    """Thermodynamics of lattice models from neural samplers and MCMC."""
