"""The ``dino`` command: training and evaluation on this machine, plus the service commands."""

from __future__ import annotations

import sys

import typer

from api.cli_admin import serve_command, token_app
from api.cli_client import cancel, cluster, grid_app, job, jobs, submit
from dino_core.cli import train_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help="DINO Orchestrator.")
app.command("train")(train_command)


def mount_eval() -> None:
    """Add ``dino eval`` and ``dino data`` (their modules import torch: mounted only when
    they can be needed, so the client commands start fast)."""
    from dino_core.data_cli import app as data_app
    from dino_core.eval_cli import app as eval_app

    if not any(g.name == "eval" for g in app.registered_groups):
        app.add_typer(eval_app, name="eval", help="Score a checkpoint: knn | linear | attention.")
    if not any(g.name == "data" for g in app.registered_groups):
        app.add_typer(data_app, name="data", help="Prepare data sets: shard SRC DEST.")


def _needs_eval(argv: list[str]) -> bool:
    first = next((a for a in argv if not a.startswith("-")), None)
    return first is None or first in ("eval", "data")


app.command("serve")(serve_command)
app.add_typer(token_app, name="token")
app.command("submit")(submit)
app.command("jobs")(jobs)
app.command("job")(job)
app.add_typer(grid_app, name="grid")
app.command("cancel")(cancel)
app.command("cluster")(cluster)


def main() -> None:
    if _needs_eval(sys.argv[1:]):
        mount_eval()
    app()


if __name__ == "__main__":
    main()
