"""Rich renderings for the CLI: the live job table of a grid and the ablation table."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from api.cli.client import ApiClient
from worker.contracts import (
    CANCELLED,
    COLLAPSED,
    DIVERGED,
    FAILED,
    GRID_DONE,
    QUEUED,
    RUNNING,
    SUCCEEDED,
)

STATUS_STYLE: dict[str, str] = {
    QUEUED: "dim",
    RUNNING: "cyan",
    SUCCEEDED: "green",
    FAILED: "red",
    CANCELLED: "yellow",
    COLLAPSED: "magenta",
    DIVERGED: "red",
}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _bar(job: Mapping[str, Any]) -> ProgressBar | Text:
    total, step = job.get("total_steps"), job.get("step")
    if job.get("status") == SUCCEEDED:
        return ProgressBar(total=1, completed=1, width=12)
    if not total or step is None:
        return Text("")
    return ProgressBar(total=float(total), completed=float(step), width=12)


def jobs_table(
    jobs: Sequence[Mapping[str, Any]], title: str | None = None, strip: str = ""
) -> Table:
    """One row per job: name (``strip`` removed from its front), kind, status, progress bar,
    step, loss, attempt, id."""
    table = Table(title=title, expand=False)
    widths = {"status": 9, "step": 7, "loss": 6, "id": 16}
    for col in ("job", "kind", "status", "progress", "step", "loss", "attempt", "id"):
        table.add_column(col, no_wrap=True, min_width=widths.get(col))
    for j in jobs:
        metrics = j.get("result_metrics") or j.get("metrics") or {}
        total = j.get("total_steps")
        step = f"{j.get('step') or 0}/{total}" if total else "-"
        status = str(j.get("status"))
        table.add_row(
            str(j.get("name")).removeprefix(strip) or str(j.get("name")),
            str(j.get("kind")),
            Text(status, style=STATUS_STYLE.get(status, "")),
            _bar(j),
            step,
            _fmt(metrics.get("loss")),
            str(j.get("attempt")),
            str(j.get("id")),
        )
    return table


def grid_panel(grid: Mapping[str, Any]) -> Group:
    counts = ", ".join(f"{k} {v}" for k, v in sorted((grid.get("counts") or {}).items()))
    head = Text(f"grid {grid['id']} ({grid['name']}): {grid['status']} - {counts}")
    return Group(head, jobs_table(grid.get("jobs") or [], strip=f"{grid['name']}/"))


def watch_grid(
    client: ApiClient,
    grid_id: str,
    console: Console,
    interval: float = 1.0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Redraw the grid's job table until every job has ended; returns the final grid.
    Raises :class:`TimeoutError` after ``timeout`` seconds (the jobs keep running)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    grid = client.get_grid(grid_id)
    with Live(grid_panel(grid), console=console, refresh_per_second=4, transient=False) as live:
        while grid["status"] not in GRID_DONE:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"grid {grid_id} is still {grid['status']} after {timeout:g} s")
            time.sleep(interval)
            grid = client.get_grid(grid_id)
            live.update(grid_panel(grid))
    if not console.is_terminal:
        console.line()  # Live's last frame ends without a newline when written to a file
    return grid


MEAN_SUFFIXES = ("_std", "_n", "_p", "_vs_best")
MARKS = {"best": " (best)", "lower": " *", "~": ""}


SEED_COLUMNS = ("n_seeds", "seeds")


def _shown(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Columns some row has a value in, less ids; the seed columns only when some row has
    more than one seed (a one-seed grid's seed is in its baselines table)."""
    hidden = {"job_id", "mlflow_run_id"}
    if rows and all(isinstance(r.get("n_seeds"), int) and r["n_seeds"] <= 1 for r in rows):
        hidden.update(SEED_COLUMNS)
    return [
        c
        for c in columns
        if c not in hidden and (not rows or any(r.get(c) is not None for r in rows))
    ]


def mean_cell(row: Mapping[str, Any], metric: str) -> str:
    """``75.81 ± 0.6`` (n when fewer runs than seeds have it), with the mark against the best
    combination: `` (best)``, `` *`` (lower beyond the seed spread)."""
    mean = row.get(metric)
    if mean is None:
        return "-"
    text = _fmt(mean)
    std = row.get(f"{metric}_std")
    if std is not None:
        text += f" ± {std:.2g}"
    n, seeds = row.get(f"{metric}_n"), row.get("n_seeds")
    if isinstance(n, int) and isinstance(seeds, int) and n < seeds:
        text += f" (n={n})"
    return text + MARKS.get(str(row.get(f"{metric}_vs_best")), "")


def _folded_table(title: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Table:
    """Rows with each metric ``m`` that has ``m_std`` / ``m_n`` columns shown as one cell."""
    metrics = {c for c in columns if f"{c}_n" in columns}
    folded = {f"{m}{sfx}" for m in metrics for sfx in MEAN_SUFFIXES}
    kept = [c for c in _shown(columns, rows) if c not in folded]
    table = Table(title=title)
    for col in kept:
        justify = "left" if col in ("status", "seeds") else "right"
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(mean_cell(row, c) if c in metrics else _fmt(row.get(c)) for c in kept))
    return table


def summary_table(summary: Mapping[str, Any]) -> Table:
    """The ablation table, one row per combination: each metric as mean ± std over its seeds
    and its mark against the best (columns as the API orders them; the std / n / p columns
    folded into their metric; ids and metrics no combination has left out)."""
    title = f"grid {summary['grid_id']} ({summary['name']}): {summary['status']}"
    return _folded_table(title, summary["columns"], summary["table"])


def runs_table(summary: Mapping[str, Any]) -> Table:
    """One row per pretraining run (combination x seed)."""
    title = f"grid {summary['grid_id']} ({summary['name']}): every run"
    return _folded_table(title, summary["run_columns"], summary["run_table"])


def baselines_table(summary: Mapping[str, Any]) -> Table:
    """The grid's baselines: k-NN of random init (mean ± std over the seeds) and raw pixels."""
    title = "baselines: k-NN of the same architecture and data (once per grid)"
    return _folded_table(title, summary["baseline_columns"], summary["baselines"])
