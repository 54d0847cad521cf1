"""Building job rows: a pretraining job and the eval jobs that wait on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dino_core.config import DinoConfig
from orchestrator.models import Job, new_id
from orchestrator.states import record_event
from worker.contracts import QUEUED, EvalKind, Resources
from worker.deployment import jobs_root


def storage_uri_for(job_id: str) -> str:
    """``<jobs_root>/<job_id>``: the job's checkpoints and outputs, kept across attempts."""
    return f"{jobs_root().rstrip('/')}/{job_id}"


def add_job(
    session: Session,
    *,
    owner_id: str,
    kind: str,
    name: str,
    config: DinoConfig,
    resources: Resources,
    priority: int,
    max_attempts: int,
    experiment: str,
    now: datetime,
    reason: str,
    eval_options: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    grid_id: str | None = None,
    combination: int | None = None,
    axis_values: dict[str, Any] | None = None,
    depends_on: str | None = None,
    source_checkpoint: str | None = None,
    until_epoch: int | None = None,
) -> Job:
    """Insert one QUEUED job (flushed, so dependents may reference it) and its event."""
    job_id = new_id("job")
    job = Job(
        id=job_id,
        owner_id=owner_id,
        grid_id=grid_id,
        depends_on=depends_on,
        combination=combination,
        axis_values=dict(axis_values or {}),
        name=name,
        kind=kind,
        status=QUEUED,
        status_reason=reason,
        priority=priority,
        config=config.to_dict(),
        config_hash=config.config_hash(),
        resources=resources.model_dump(mode="json"),
        eval_options=dict(eval_options or {}),
        tags=dict(tags or {}),
        storage_uri=storage_uri_for(job_id),
        source_checkpoint=source_checkpoint,
        until_epoch=until_epoch,
        attempt=1,
        failed_attempts=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        created_at=now,
        queued_at=now,
        updated_at=now,
        metrics={},
        result_metrics={},
        mlflow_experiment=experiment,
        collapsed=False,
    )
    session.add(job)
    session.flush()
    record_event(
        session, "submitted", reason, job_id=job_id, grid_id=grid_id, attempt=1, to_status=QUEUED
    )
    return job


def eval_resources(resources: Resources) -> Resources:
    """Evaluations run on one worker with the pretraining job's per-worker resources."""
    return resources.model_copy(update={"num_workers": 1})


def add_evals(
    session: Session,
    pretrain: Job,
    config: DinoConfig,
    kinds: Sequence[EvalKind],
    resources: Resources,
    now: datetime,
    options_by_kind: Mapping[EvalKind, dict[str, Any]] | None = None,
) -> list[Job]:
    """One QUEUED eval job per kind (with that kind's options), each waiting for
    ``pretrain`` to succeed."""
    options = options_by_kind or {}
    return [
        add_job(
            session,
            owner_id=pretrain.owner_id,
            kind=kind,
            name=f"{pretrain.name}/{kind.removeprefix('eval_')}",
            config=config,
            resources=resources,
            priority=pretrain.priority,
            max_attempts=pretrain.max_attempts,
            experiment=pretrain.mlflow_experiment,
            now=now,
            reason=f"waits for pretraining job {pretrain.id} to succeed",
            eval_options=dict(options.get(kind, {})),
            tags=dict(pretrain.tags),
            grid_id=pretrain.grid_id,
            combination=pretrain.combination,
            axis_values=pretrain.axis_values,
            depends_on=pretrain.id,
        )
        for kind in kinds
    ]
