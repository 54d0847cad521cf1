"""The ``dino`` command: training and evaluation on this machine, plus the service commands.

``dino train`` and ``dino eval`` run the method here (dino_core, torch); they are mounted only
when the command line can need them, so the client commands (``submit``, ``jobs``, ``grid``
...) load neither torch nor the server's layers and start fast.
"""

from __future__ import annotations

import sys

import typer

from api.cli.admin import serve_command, token_app
from api.cli.commands import cancel, cluster, grid_app, job, jobs, submit

app = typer.Typer(add_completion=False, no_args_is_help=True, help="DINO Orchestrator.")
METHOD_COMMANDS = ("train", "eval", "data")


def mount_method_commands() -> None:
    """Add ``dino train``, ``dino eval`` and ``dino data`` (idempotent)."""
    from dino_core.cli import train_command
    from dino_core.data_cli import app as data_app
    from dino_core.eval_cli import app as eval_app

    if not any(c.name == "train" for c in app.registered_commands):
        app.command("train")(train_command)
    if not any(g.name == "eval" for g in app.registered_groups):
        app.add_typer(eval_app, name="eval", help="Score a checkpoint: knn | linear | attention.")
    if not any(g.name == "data" for g in app.registered_groups):
        app.add_typer(data_app, name="data", help="Prepare data sets: shard SRC DEST.")


def needs_method_commands(argv: list[str]) -> bool:
    """True for ``dino``, ``dino --help`` and ``dino train|eval|data ...``."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first is None or first in METHOD_COMMANDS


app.command("serve")(serve_command)
app.add_typer(token_app, name="token")
app.command("submit")(submit)
app.command("jobs")(jobs)
app.command("job")(job)
app.add_typer(grid_app, name="grid")
app.command("cancel")(cancel)
app.command("cluster")(cluster)


def main() -> None:
    if needs_method_commands(sys.argv[1:]):
        mount_method_commands()
    app()


if __name__ == "__main__":
    main()
