"""Client commands of ``dino``: submit, jobs, grid show/list/watch, cancel, cluster.

They talk to the API at ``DINO_API_URL`` with ``DINO_TOKEN`` (or the saved token file).
Server errors are printed with the field paths the server named; the exit code is 1 for a
refused request or failed jobs, 2 for an invalid grid file (unreadable, not UTF-8, or as the
server's dry run or submission judged it, over its size cap included: one check, the
server's own), 3 when the API is unreachable,
4 when ``--timeout`` ran out while watching.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from api.cli.client import ApiClient, ApiError
from api.cli.gridfile import GridFileError, grid_body, render_errors
from api.cli.watch import baselines_table, jobs_table, runs_table, summary_table, watch_grid
from worker.contracts import SUCCEEDED

grid_app = typer.Typer(no_args_is_help=True, help="Ablation grids: show, list, watch, extend.")
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


@contextmanager
def api_errors() -> Iterator[None]:
    """Print an :class:`ApiError` readably and exit non-zero."""
    try:
        yield
    except ApiError as err:
        err_console.print(f"[red]error:[/red] {err.render()}", highlight=False)
        raise typer.Exit(3 if err.status == 0 else 1) from None


@contextmanager
def invalid_grid(source: str) -> Iterator[None]:
    """The server's 422 (its fields) or 413 (over the body size cap) about a grid file:
    printed once, exit code 2; the server stored nothing."""
    try:
        yield
    except ApiError as err:
        if err.status == 413:
            detail = err.problem.get("detail", "")
            message = f"{source}: {detail}"
        elif err.status == 422:
            message = render_errors(source, err.problem)
        else:
            raise
        err_console.print(f"[red]error:[/red] {message}", highlight=False)
        raise typer.Exit(2) from None


def _client_call(fn: Callable[[ApiClient], T]) -> T:
    with api_errors(), ApiClient.from_env() as client:
        return fn(client)


def _watch(client: ApiClient, grid_id: str, timeout: float | None) -> dict[str, Any]:
    try:
        return watch_grid(client, grid_id, console, timeout=timeout)
    except TimeoutError as err:
        err_console.print(f"{err}: the jobs keep running; follow them with `dino grid watch`")
        raise typer.Exit(4) from None


VIEWS = ("combinations", "runs", "baselines")


def _print_summary(client: ApiClient, grid_id: str, view: str = "combinations") -> dict[str, Any]:
    """The per-combination table (mean ± std over seeds, marks against the best), then the
    baselines and the rule the marks follow; ``view`` runs / baselines: that table alone."""
    summary = client.grid_summary(grid_id, "json").json()
    if view == "runs":
        console.print(runs_table(summary))
    elif view == "baselines":
        console.print(baselines_table(summary))
    else:
        console.print(summary_table(summary))
        if summary.get("baselines"):
            console.print(baselines_table(summary))
        legend = "(best): the highest mean; *: lower than the best beyond the seed spread"
        console.print(f"[dim]{legend}. {summary.get('rule', '')}[/dim]", highlight=False)
    return dict(summary)


def submit(
    grid_file: Annotated[Path, typer.Argument(help="GRID.yaml (see api/cli/gridfile.py)")],
    watch: Annotated[bool, typer.Option("--watch", help="live job table until it ends")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="ask the server to check it (nothing stored)")
    ] = False,
    key: Annotated[
        str | None, typer.Option(help="Idempotency-Key (default: a new one per call)")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="stop watching after this many seconds (exit 4)")
    ] = None,
) -> None:
    """Check GRID.yaml with the server (nothing is stored if it is invalid), submit it, and
    optionally watch it to the end. ``--dry-run`` asks the server's dry run only."""
    try:
        body = grid_body(grid_file)
    except GridFileError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    with api_errors(), invalid_grid(str(grid_file)), ApiClient.from_env() as client:
        if dry_run:
            plan = client.plan_grid(body)
            console.print_json(json.dumps(body))
            seeds = f" x {len(plan['seeds'])} seed(s)" if plan.get("seeds") else ""
            console.print(
                f"{grid_file}: valid, {plan['n_combinations']} combination(s){seeds}, "
                f"{plan['n_jobs']} job(s) ({plan['n_runs']} pretraining, "
                f"{plan['n_baseline_jobs']} k-NN baselines)"
            )
            return
        grid = client.submit_grid(body, key)
        console.print(
            f"submitted grid [bold]{grid['id']}[/bold] ({grid['name']}): "
            f"{grid['n_combinations']} combination(s), {len(grid['jobs'])} job(s)"
        )
        if not watch:
            return
        final = _watch(client, grid["id"], timeout)
        _print_summary(client, grid["id"])
        if final["status"] != SUCCEEDED:
            raise typer.Exit(1)


def jobs(
    status: Annotated[str | None, typer.Option(help="QUEUED, RUNNING, SUCCEEDED, ...")] = None,
    grid: Annotated[str | None, typer.Option(help="jobs of this grid id")] = None,
    owner: Annotated[str | None, typer.Option(help="user name (admins)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """List jobs, newest first."""
    page = _client_call(
        lambda c: c.list_jobs(status=status, grid_id=grid, owner=owner, limit=limit)
    )
    if as_json:
        console.print_json(json.dumps(page))
        return
    console.print(jobs_table(page["items"], title=f"{len(page['items'])} job(s)"))


def job(job_id: Annotated[str, typer.Argument(help="job id")]) -> None:
    """One job: status, attempts, progress, metrics, MLflow link, checkpoint."""
    detail = _client_call(lambda c: c.get_job(job_id))
    table = Table(show_header=False, title=f"job {detail['id']} ({detail['name']})")
    prog = detail["progress"]
    rows = {
        "status": f"{detail['status']}: {detail['status_reason']}",
        "kind": detail["kind"],
        "attempt": f"{detail['attempt']} of {detail['max_attempts']}",
        "progress": f"step {prog['step']} / {prog['total_steps']} (epoch {prog['epoch']})",
        "metrics": json.dumps(detail["result_metrics"] or detail["metrics"]),
        "checkpoint": detail["checkpoint_uri"] or "-",
        "mlflow run": detail["mlflow_run_url"] or "-",
        "error": (detail["error"] or "-")[-500:],
    }
    for k, v in rows.items():
        table.add_row(k, v)
    console.print(table)


@grid_app.command("show")
def grid_show(
    grid_id: Annotated[str, typer.Argument(help="grid id")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json | png")] = "table",
    output: Annotated[Path | None, typer.Option(help="write to this file (png: required)")] = None,
    view: Annotated[
        str, typer.Option(help="table / csv: combinations (mean ± std), runs or baselines")
    ] = "combinations",
) -> None:
    """The ablation table of a grid: per combination mean ± std over its seeds, marked
    against the best, and the baselines; the figure with --format png."""
    if fmt not in ("table", "csv", "json", "png"):
        err_console.print(f"[red]error:[/red] --format {fmt!r}: use table, csv, json or png")
        raise typer.Exit(2)
    if view not in VIEWS:
        err_console.print(f"[red]error:[/red] --view {view!r}: use {', '.join(VIEWS)}")
        raise typer.Exit(2)
    if fmt == "png" and output is None:
        err_console.print("[red]error:[/red] --format png needs --output FILE.png")
        raise typer.Exit(2)
    with api_errors(), ApiClient.from_env() as client:
        if fmt == "table":
            _print_summary(client, grid_id, view)
            return
        response = client.grid_summary(grid_id, fmt, view)
    if output is not None:
        output.write_bytes(response.content)
        console.print(f"wrote {output}")
    elif fmt == "json":
        console.print_json(response.text)
    else:
        typer.echo(response.text, nl=False)


@grid_app.command("list")
def grid_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """Grids, newest first, with job counts."""
    page = _client_call(lambda c: c.list_grids(limit))
    table = Table(title=f"{len(page['items'])} grid(s)")
    for col in ("id", "name", "status", "combinations", "jobs by state", "created"):
        table.add_column(col)
    for g in page["items"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(g["counts"].items()))
        table.add_row(
            g["id"], g["name"], g["status"], str(g["n_combinations"]), counts, g["created_at"]
        )
    console.print(table)


def extension_body(axes: list[str], seeds: list[int]) -> dict[str, Any]:
    """``--axis field=v1,v2`` (values read as YAML) and ``--seed N``: the extend body."""
    added: dict[str, list[Any]] = {}
    for item in axes:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise typer.BadParameter(f"--axis {item!r}: write field=value1,value2")
        added.setdefault(key.strip(), []).extend(yaml.safe_load(v) for v in values.split(","))
    return {"axes": added, "seeds": list(seeds)}


@grid_app.command("extend")
def grid_extend(
    grid_id: Annotated[str, typer.Argument(help="grid id")],
    axis: Annotated[
        list[str] | None, typer.Option(help="more values of an axis: field=v1,v2 (repeatable)")
    ] = None,
    seed: Annotated[list[int] | None, typer.Option(help="one more seed (repeatable)")] = None,
) -> None:
    """Add values to the grid's axes and/or seeds: only the new combinations run, the
    summary covers all. Another base config, a new axis or a value already there: refused."""
    body = extension_body(axis or [], seed or [])
    grid = _client_call(lambda c: c.extend_grid(grid_id, body))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(grid["counts"].items()))
    console.print(
        f"extended grid [bold]{grid['id']}[/bold]: {grid['n_combinations']} combination(s), "
        f"jobs {counts}"
    )


@grid_app.command("watch")
def grid_watch(
    grid_id: Annotated[str, typer.Argument(help="grid id")],
    timeout: Annotated[float | None, typer.Option(help="give up after N seconds (exit 4)")] = None,
) -> None:
    """Live job table of a grid until every job has ended, then its ablation table."""
    with api_errors(), ApiClient.from_env() as client:
        final = _watch(client, grid_id, timeout)
        _print_summary(client, grid_id)
    if final["status"] != SUCCEEDED:
        raise typer.Exit(1)


def cancel(obj_id: Annotated[str, typer.Argument(help="job-... or grid-... id")]) -> None:
    """Cancel a job, or every unfinished job of a grid."""
    if obj_id.startswith("grid-"):
        grid = _client_call(lambda c: c.cancel_grid(obj_id))
        console.print(f"grid {grid['id']}: {grid['status']} ({grid['counts']})")
        return
    job_view = _client_call(lambda c: c.cancel_job(obj_id))
    note = " (cancel requested: the orchestrator stops it)" if job_view["cancel_requested"] else ""
    console.print(f"job {job_view['id']}: {job_view['status']}{note}")


def cluster() -> None:
    """Ray nodes, resources used and free, queue length (admins: every job, hosts and PIDs;
    users: their own jobs)."""
    info = _client_call(lambda c: c.cluster())
    q = info["queue"]
    console.print(
        f"queue: {q['queue_length']} ready, {q['waiting_dependencies']} waiting on "
        f"pretraining, {q['backing_off']} backing off; jobs by state: {q['jobs_by_state']}"
    )
    alive = ", ".join(f"{o['id']} ({o['hostname']}:{o['pid']})" for o in info["orchestrators"])
    if not alive and info["orchestrators_alive"]:  # a plain user's view names no process
        alive = f"{info['orchestrators_alive']} alive"
    console.print(f"orchestrators: {alive or 'none alive (is `dino serve` running?)'}")
    table = Table(title=f"Ray resources (reported {info['reported_at'] or 'never'})")
    for col in ("resource", "total", "used", "free"):
        table.add_column(col, justify="right")
    for name, total in sorted(info["resources_total"].items()):
        if name.startswith("node:"):
            continue
        used = info["resources_used"].get(name, 0.0)
        free = info["resources_available"].get(name, 0.0)
        table.add_row(name, f"{total:g}", f"{used:g}", f"{free:g}")
    console.print(table)
    console.print(f"{len(info['nodes'])} node(s)")
