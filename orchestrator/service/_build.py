"""Building job rows: a pretraining job and the eval jobs that wait on it, each reusing the
results of a SUCCEEDED job with its identity when asked (:mod:`orchestrator.reuse`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dino_core.config import DinoConfig
from orchestrator.models import Job, new_id
from orchestrator.reuse import find_reusable, reuse_key, reused_values
from orchestrator.states import record_event
from worker.contracts import QUEUED, SUCCEEDED, EvalKind, Resources
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
    reuse: bool = False,
) -> Job:
    """Insert one QUEUED job (flushed, so dependents may reference it) and its event; with
    ``reuse``, a SUCCEEDED job of the owner with the same identity makes it SUCCEEDED now."""
    job_id = new_id("job")
    options = dict(eval_options or {})
    scored = session.get(Job, depends_on) if depends_on else None
    of = scored.reuse_key or scored.id if scored is not None else source_checkpoint or ""
    key = reuse_key(kind, config.config_hash(), options, dict(tags or {}), of)
    source = find_reusable(session, owner_id, key) if reuse else None
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
        eval_options=options,
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
        reuse_key=key,
    )
    if source is not None:
        for column, value in reused_values(source).items():
            setattr(job, column, value)
        job.status, job.finished_at = SUCCEEDED, now
    session.add(job)
    session.flush()
    record_event(
        session, "submitted", reason, job_id=job_id, grid_id=grid_id, attempt=1, to_status=QUEUED
    )
    if source is not None:
        record_event(
            session,
            "reused",
            job.status_reason,
            job_id=job_id,
            grid_id=grid_id,
            from_status=QUEUED,
            to_status=SUCCEEDED,
            data={"source_job": source.id, "checkpoint_uri": source.checkpoint_uri},
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
    *,
    reuse: bool = False,
) -> list[Job]:
    """One QUEUED eval job per kind (with that kind's options), each waiting for
    ``pretrain`` to succeed (ready at once when it already did: it was reused)."""
    options = options_by_kind or {}
    done = pretrain.checkpoint_uri if pretrain.status == SUCCEEDED else None
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
            source_checkpoint=done,
            reuse=reuse,
        )
        for kind in kinds
    ]
