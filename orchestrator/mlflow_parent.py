"""MLflow set-up by the orchestrator: job experiments, and a grid's parent run, created when
the grid's first job is scheduled.

Children are the jobs' own runs (the worker sets ``mlflow.parentRunId`` from
``spec.mlflow.parent_run_id``): one per pretraining run, evaluation and baselines job. The run
id is stored on the grid row with a conditional UPDATE, so two orchestrators racing end up
sharing one parent run. When the grid ends, :func:`publish_results` logs its summary to the
parent run: per-combination statistics as metrics (so MLflow's compare view can set grids side
by side), the summary figure and the tables as artifacts.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import update

from orchestrator.ablation import GridResults, grid_results, to_csv
from orchestrator.ablation.aggregate import METRICS
from orchestrator.db import Database
from orchestrator.models import Grid
from orchestrator.service.grids import summary_rows
from worker.contracts import MLFLOW_FAILED, MLFLOW_FINISHED

TAG_GRID = "dino.grid_id"


@functools.cache
def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


@functools.cache
def ensure_experiment_id(tracking_uri: str, name: str) -> str:
    """Create the experiment here (embedded store: artifacts under this process's DINO_HOME)
    rather than in whichever worker gets there first."""
    from worker.deployment import default_artifact_root
    from worker.mlflow_run import ensure_experiment, is_embedded

    location = default_artifact_root() if is_embedded(tracking_uri) else None
    return ensure_experiment(_client(tracking_uri), name, location)


def ensure_parent_run(db: Database, grid_id: str, tracking_uri: str) -> str:
    """The grid's parent run id, creating the experiment ``dino/<name>`` and run if needed."""
    with db.session() as s:
        grid = s.get(Grid, grid_id)
        if grid is None:
            raise ValueError(f"grid {grid_id} does not exist")
        if grid.mlflow_parent_run_id:
            return grid.mlflow_parent_run_id
        name, experiment, axes = grid.name, grid.mlflow_experiment, grid.axes
        n = grid.n_combinations
    from mlflow.entities import Param

    client = _client(tracking_uri)
    exp_id = ensure_experiment_id(tracking_uri, experiment)
    run = client.create_run(
        exp_id,
        run_name=name,
        tags={TAG_GRID: grid_id, "dino.kind": "grid", "dino.combinations": str(n)},
    )
    run_id = str(run.info.run_id)
    params = [Param(f"axis.{k}", json.dumps(v)[:6000]) for k, v in sorted(axes.items())]
    if params:
        client.log_batch(run_id, params=params)
    with db.session() as s:
        res = s.execute(
            update(Grid)
            .where(Grid.id == grid_id, Grid.mlflow_parent_run_id.is_(None))
            .values(mlflow_parent_run_id=run_id)
        )
        won = res.rowcount == 1  # type: ignore[attr-defined]
        stored = s.get(Grid, grid_id)
        final = stored.mlflow_parent_run_id if stored else None
    if not won:
        client.delete_run(run_id)
    return str(final or run_id)


def finish_parent_run(tracking_uri: str, run_id: str, succeeded: bool) -> None:
    """Mark the parent run FINISHED (every job succeeded) or FAILED."""
    status = MLFLOW_FINISHED if succeeded else MLFLOW_FAILED
    _client(tracking_uri).set_terminated(run_id, status=status)


SUMMARY_DIR = "summary"  # artifact folder of the parent run


def summary_metrics(results: GridResults) -> dict[str, float]:
    """``c<i>/<m>``, ``c<i>/<m>_std``, ``c<i>/<m>_n`` per combination ``i`` and metric, the
    best combination's (highest k-NN mean) as ``best/<m>``, the baselines as
    ``baseline/<column>`` (``baseline<j>/...`` when the grid has several)."""
    out: dict[str, float] = {}
    for row in results.table:
        for m in METRICS:
            for col in (m, f"{m}_std", f"{m}_n"):
                if isinstance(row.get(col), int | float) and row[col] is not None:
                    out[f"c{row['combination']}/{col}"] = float(row[col])
    scored = [r for r in results.table if r.get("knn_top1") is not None]
    if scored:
        best = max(scored, key=lambda r: float(r["knn_top1"]))
        out["best/combination"] = float(best["combination"])
        for m in METRICS:
            if best.get(m) is not None:
                out[f"best/{m}"] = float(best[m])
    for j, ref in enumerate(results.baselines):
        prefix = "baseline" if len(results.baselines) == 1 else f"baseline{j}"
        for col in ("knn_random_init", "knn_random_init_std", "knn_raw_pixels"):
            if isinstance(ref.get(col), int | float):
                out[f"{prefix}/{col}"] = float(ref[col])
    return out


def log_results(tracking_uri: str, run_id: str, results: GridResults) -> None:
    """Metrics of :func:`summary_metrics`, tags naming each combination, and the artifacts
    ``summary/{summary.png, combinations.csv, runs.csv, baselines.csv}``."""
    from mlflow.entities import Metric, RunTag

    from orchestrator.ablation.figure import to_png
    from orchestrator.models import utcnow

    client = _client(tracking_uri)
    now = int(utcnow().timestamp() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in sorted(summary_metrics(results).items())]
    tags = [RunTag("dino.summary.rule", results.rule)]
    for row in results.table:
        label = ", ".join(f"{a}={row.get(a)!r}" for a in results.axes) or "(base config)"
        tags.append(RunTag(f"dino.combination.c{row['combination']}", label[:5000]))
    for start in range(0, max(len(metrics), 1), 900):  # MLflow takes 1000 per batch
        client.log_batch(
            run_id, metrics=metrics[start : start + 900], tags=tags if not start else []
        )
    with tempfile.TemporaryDirectory(prefix="dino-grid-summary-") as tmp:
        folder = Path(tmp)
        (folder / "summary.png").write_bytes(to_png(results))
        (folder / "combinations.csv").write_text(to_csv(results.columns, results.table))
        (folder / "runs.csv").write_text(to_csv(results.run_columns, results.run_table))
        if results.baselines:
            text = to_csv(results.baseline_columns, results.baselines)
            (folder / "baselines.csv").write_text(text)
        client.log_artifacts(run_id, str(folder), SUMMARY_DIR)


def publish_results(db: Database, grid_id: str, tracking_uri: str, run_id: str) -> None:
    """Log the summary of grid ``grid_id`` to its parent run ``run_id`` (:func:`log_results`)."""
    with db.session() as s:
        grid = s.get(Grid, grid_id)
        if grid is None:
            raise ValueError(f"grid {grid_id} does not exist")
        name = grid.name
        rows = summary_rows(s, grid_id)
    log_results(tracking_uri, run_id, grid_results(name, rows))
