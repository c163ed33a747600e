"""The ``lattherm`` command line: one sub-command group per pipeline stage.

Snakemake rules and users call the same commands. A group's module is imported only when that
group runs, so a workflow job loads the libraries of its own stage (torch, icet, matplotlib)
and not those of every stage. ``main`` is the console entry point: an input the user can fix
(a :class:`lattherm.errors.LatthermError`, a usage error, a missing or unreadable file) is printed
as one line, ``error: ...``, with exit status 1 (2 for usage errors); anything else is a bug and
keeps its traceback.
"""

import importlib
import sys

import typer
from typer.core import TyperGroup

from lattherm.errors import LatthermError

GROUPS = {
    "ce": "Cluster-expansion fitting for binary alloys (icet).",
    "exact": "Exact references: Kaufman Ising, brute-force enumeration.",
    "mcmc": "MCMC references: mchammer and batched torch samplers.",
    "neural": "Neural samplers: training, sampling, transfer.",
    "analysis": "Free energies, phase diagram and figures.",
}


class LazyGroups(TyperGroup):
    """Lists every group but imports ``lattherm.cli.<name>`` only when it is looked up."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(GROUPS)

    def get_command(self, ctx: typer.Context, name: str) -> TyperGroup | None:
        if name not in GROUPS:
            return None
        command = typer.main.get_group(importlib.import_module(f"lattherm.cli.{name}").app)
        command.name, command.help = name, GROUPS[name]
        return command


app = typer.Typer(cls=LazyGroups, help="Thermodynamics of lattice models from neural samplers and MCMC.",
                  no_args_is_help=True)


@app.callback()
def _root() -> None:
    """Thermodynamics of lattice models from neural samplers and MCMC."""


def main(argv: list[str] | None = None) -> None:
    """Run the command line; print user errors as one line instead of a traceback."""
    try:
        status = typer.main.get_command(app).main(args=argv, prog_name="lattherm", standalone_mode=False)
    except typer.TyperException as exc:  # usage errors and bad values: the message names the option
        _exit_with(exc.format_message(), exc.exit_code)
    except typer.Abort:
        _exit_with("aborted", 1)
    except (LatthermError, OSError) as exc:
        _exit_with(str(exc), 1)
    sys.exit(status if isinstance(status, int) else 0)


def _exit_with(message: str, status: int) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(status)
