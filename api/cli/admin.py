"""``dino serve`` and ``dino token create``: commands that run on the server's machine.

They open the job database themselves (the only ``dino`` commands that do), so they import
the server's layers inside the command, never when ``dino`` starts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from api.cli.token_store import save_token, token_file

token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of API users.")
err_console = Console(stderr=True)


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Argument(help="user name (created if new)")],
    admin: Annotated[bool, typer.Option("--admin", help="the user sees every job")] = False,
    save: Annotated[
        bool, typer.Option("--save", help="also write it to <DINO_HOME>/token for the CLI")
    ] = False,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="replace the token of an existing user")
    ] = False,
    database_url: Annotated[
        str | None, typer.Option(help="default: DINO_DATABASE_URL or <DINO_HOME>/dino.db")
    ] = None,
) -> None:
    """Create USER with a new bearer token and print it once (only its hash is stored)."""
    from api.server.auth import issue_token
    from orchestrator.db import open_database
    from orchestrator.errors import ConflictError

    db = open_database(database_url)
    try:
        token = issue_token(db, user, "admin" if admin else "user", rotate=rotate)
    except ConflictError as err:
        err_console.print(f"[red]error:[/red] {err} (use --rotate to replace its token)")
        raise typer.Exit(1) from None
    except ValueError as err:
        err_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    typer.echo(token)
    role = "admin" if admin else "user"
    err_console.print(f"token of {role} {user!r} shown once above: keep it (export DINO_TOKEN=...)")
    if save:
        path = token_file()
        save_token(token, path)
        err_console.print(f"saved to {path} (mode 600): read when DINO_TOKEN is unset")


def serve_command(
    port: Annotated[int, typer.Option(help="API port on 127.0.0.1")] = 8000,
    host: Annotated[str, typer.Option(help="bind address (keep 127.0.0.1 unless proxied)")] = (
        "127.0.0.1"
    ),
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray")] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="join this Ray cluster instead (default: RAY_ADDRESS)")
    ] = None,
    orchestrator: Annotated[
        bool, typer.Option(help="run the scheduling loop beside the API")
    ] = True,
    mlflow_ui: Annotated[
        bool, typer.Option("--mlflow-ui/--no-mlflow-ui", help="also start `mlflow ui`")
    ] = False,
    mlflow_port: Annotated[int, typer.Option(help="port of the MLflow UI")] = 5000,
    job_fn: Annotated[
        str | None, typer.Option(hidden=True, help="module:function per attempt (tests)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the API and the orchestrator (embedded defaults: SQLite, local Ray, MLflow sqlite
    store under DINO_HOME) until Ctrl-C or SIGTERM."""
    from api.cli.serve import serve

    serve(
        host=host,
        port=port,
        num_cpus=num_cpus,
        ray_address=ray_address,
        job_fn=job_fn,
        orchestrator=orchestrator,
        mlflow_ui=mlflow_ui,
        mlflow_port=mlflow_port,
        log_level=log_level,
    )
