"""MLflow set-up by the orchestrator: job experiments, and a grid's parent run, created when
the grid's first job is scheduled.

Children are the jobs' own runs (the worker sets ``mlflow.parentRunId`` from
``spec.mlflow.parent_run_id``). The run id is stored on the grid row with a conditional
UPDATE, so two orchestrators racing end up sharing one parent run.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from sqlalchemy import update

from orchestrator.db import Database
from orchestrator.models import Grid
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
