"""What the scheduler writes to the database: claims, progress, ends, retries.

Every write is guarded by ``status = RUNNING AND attempt = n AND claimed_by = me`` (or the
QUEUED claim), so an orchestrator that lost its lease cannot overwrite the adopter's work.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from orchestrator.db import Database
from orchestrator.dependencies import cancel_dependents, release_dependents
from orchestrator.errors import StaleStateError
from orchestrator.models import Attempt, Event, Job, utcnow
from orchestrator.runner import actor_name
from orchestrator.settings import OrchestratorSettings
from orchestrator.states import record_event, transition
from worker.contracts import (
    ABANDONED,
    CANCELLED,
    COLLAPSED,
    FAILED,
    LOST,
    PAUSED,
    QUEUED,
    RETRIED_FAILURES,
    RUNNING,
    SUCCEEDED,
    AttemptEnd,
    AttemptStatus,
    CheckpointSaved,
    Collapsed,
    JobResult,
    JobStatus,
    Progress,
    Started,
    Warned,
    WorkerEvent,
    event_to_json,
)


def json_safe(value: Any) -> Any:
    """Non-finite floats become None (PostgreSQL's JSON refuses NaN and Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def claim(db: Database, job_id: str, orchestrator_id: str, actor: str | None = None) -> Job | None:
    """QUEUED -> RUNNING for this orchestrator plus a new attempt row that names the Ray actor
    running it (``actor``: a kept actor of an earlier job; None: a new one named after this
    attempt); None if someone else claimed or cancelled it first."""
    now = utcnow()
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != QUEUED or job.cancel_requested:
            return None
        try:
            transition(
                s,
                job,
                RUNNING,
                f"attempt {job.attempt} claimed by {orchestrator_id}",
                values={"claimed_by": orchestrator_id, "started_at": job.started_at or now},
            )
        except StaleStateError:
            return None
        s.add(
            Attempt(
                job_id=job.id,
                number=job.attempt,
                status=RUNNING,
                actor_name=actor or actor_name(job.id, job.attempt),
                orchestrator_id=orchestrator_id,
                queued_at=job.queued_at,
                claimed_at=now,
                released=False,
            )
        )
        return job


def _guard(job_id: str, attempt: int, orchestrator_id: str) -> Any:
    return (
        (Job.id == job_id)
        & (Job.status == RUNNING)
        & (Job.attempt == attempt)
        & (Job.claimed_by == orchestrator_id)
    )


def apply_events(
    db: Database, job_id: str, attempt: int, orchestrator_id: str, events: list[WorkerEvent]
) -> bool:
    """Write a batch of worker events (latest progress wins); False if the job is not ours."""
    values: dict[str, Any] = {"updated_at": utcnow()}
    logged: list[tuple[str, str, dict[str, Any]]] = []
    attempt_values: dict[str, Any] = {}
    for ev in events:
        data = json_safe(event_to_json(ev))
        match ev:
            case Progress():
                values.update(step=ev.step, epoch=ev.epoch, total_steps=ev.total_steps)
                values["metrics"] = json_safe(dict(ev.metrics))
            case Started(mlflow_run_id=run_id):
                if run_id:
                    values["mlflow_run_id"] = attempt_values["mlflow_run_id"] = run_id
                attempt_values["started_at"] = utcnow()
                logged.append(("started", f"attempt {attempt} started", data))
            case CheckpointSaved(uri=uri, step=step):
                values["checkpoint_uri"] = uri
                logged.append(("checkpoint", f"checkpoint at step {step}", data))
            case Collapsed(kind=kind):
                values.update(collapsed=True, collapse_kind=kind)
                logged.append(("collapse", f"{kind} collapse detected", data))
            case Warned(message=message):
                logged.append(("warning", message, {}))
    with db.session() as s:
        res = s.execute(update(Job).where(_guard(job_id, attempt, orchestrator_id)).values(values))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return False
        if attempt_values:
            s.execute(
                update(Attempt)
                .where(Attempt.job_id == job_id, Attempt.number == attempt)
                .values(attempt_values)
            )
        job = s.get(Job, job_id)
        grid_id = job.grid_id if job else None
        for kind, reason, data in logged:
            record_event(
                s, kind, reason, job_id=job_id, grid_id=grid_id, attempt=attempt, data=data
            )
    return True


def _retry_or_fail(
    s: Session,
    job: Job,
    reason: str,
    error: str | None,
    settings: OrchestratorSettings,
    permanent: str | None = None,
) -> JobStatus:
    """Requeue with a back-off while failures are left, else FAILED; ``permanent`` (why
    another attempt cannot help) fails it at once."""
    failed = job.failed_attempts + 1
    if permanent is None and failed < job.max_attempts:
        delay = settings.backoff_s(failed)
        eligible = utcnow() + timedelta(seconds=delay)
        transition(
            s,
            job,
            QUEUED,
            f"{reason}; retry as attempt {job.attempt + 1} after {delay:g} s "
            f"({failed} of {job.max_attempts} allowed failures used)",
            values={
                "attempt": job.attempt + 1,
                "failed_attempts": failed,
                "not_before": eligible,
                "queued_at": eligible,
                "claimed_by": None,
                "error": error,
            },
        )
        return QUEUED
    why = permanent or f"giving up after {failed} failed attempt(s)"
    transition(
        s,
        job,
        FAILED,
        f"{reason}; {why}",
        values={"failed_attempts": failed, "error": error},
    )
    cancel_dependents(s, job, f"pretraining job {job.id} FAILED")
    return FAILED


def finish(
    db: Database,
    job_id: str,
    attempt: int,
    orchestrator_id: str,
    settings: OrchestratorSettings,
    *,
    result: JobResult | None = None,
    failure: str | None = None,
) -> JobStatus | None:
    """Record how an attempt ended: a JobResult, or ``failure`` (an exception or a dead actor).

    Returns the job's new status, or None when the job was no longer this attempt's.
    """
    with db.session() as s:
        job = s.scalars(select(Job).where(_guard(job_id, attempt, orchestrator_id))).first()
        if job is None:
            return None
        status: AttemptEnd = result.status if result is not None else FAILED
        error = result.error if result is not None else failure
        att_status: AttemptStatus = status if result is not None else LOST
        values: dict[str, Any] = {}
        if result is not None:
            values["result_metrics"] = json_safe(dict(result.metrics))
            if result.checkpoint_uri:
                values["checkpoint_uri"] = result.checkpoint_uri
            if result.mlflow_run_id:
                values["mlflow_run_id"] = result.mlflow_run_id
        if error:
            values["error"] = error
        if status == PAUSED and job.cancel_requested:
            status, reason = CANCELLED, "cancel requested; the attempt stopped at a rung"
        elif status == PAUSED:
            transition(
                s,
                job,
                PAUSED,
                f"attempt {attempt} reached rung epoch {job.until_epoch}: waits for the "
                "grid's rung decision",
                values=values,
            )
            _end_attempt(s, job_id, attempt, PAUSED, None)
            return PAUSED
        elif status == FAILED and job.cancel_requested:
            status, reason = CANCELLED, "cancel requested; the attempt stopped"
        elif status == FAILED:
            first_line = (error or "no error message").strip().splitlines()[-1][:500]
            why = result.failure if result is not None else None
            what = f"failed with a {why} error" if why else "failed"
            permanent = None
            if why is not None and why not in RETRIED_FAILURES:
                permanent = f"not retried: a {why} error fails every attempt the same way"
            reason = f"attempt {attempt} {what}: {first_line}"
            new = _retry_or_fail(s, job, reason, error, settings, permanent)
            _end_attempt(s, job_id, attempt, att_status, error)
            return new
        else:
            reason = f"attempt {attempt} ended {status}"
            if status == CANCELLED:
                reason = f"{reason} (cancel requested)" if job.cancel_requested else reason
        if status == COLLAPSED:
            values["collapsed"] = True
            kind = (result.detail.get("collapse_kind") if result else None) or job.collapse_kind
            values["collapse_kind"] = kind
        transition(s, job, status, reason, values=values)
        if status == SUCCEEDED:
            release_dependents(s, job, job.checkpoint_uri)
        else:
            cancel_dependents(s, job, f"pretraining job {job.id} ended {status}")
        _end_attempt(s, job_id, attempt, att_status, error)
        return status


NODE_LOST = "node_lost"  # the event kind of a lost node or preemption


def requeue_lost_node(
    db: Database,
    job_id: str,
    attempt: int,
    orchestrator_id: str,
    settings: OrchestratorSettings,
    *,
    node_id: str | None,
    cause: str,
) -> JobStatus | None:
    """The attempt's node died or was preempted: requeue at once without counting a failure
    (the next attempt resumes from the checkpoint), recording the cause. Past
    ``settings.max_node_losses`` such losses the attempt counts like any other failure.
    None when the job is no longer this attempt's."""
    what = f"attempt {attempt} lost its node {node_id or '(unknown)'}: {cause}"
    with db.session() as s:
        job = s.scalars(select(Job).where(_guard(job_id, attempt, orchestrator_id))).first()
        if job is None:
            return None
        losses = s.scalar(
            select(func.count()).where(Event.job_id == job_id, Event.kind == NODE_LOST)
        )
        if cancelled := job.cancel_requested:
            counted = False
        else:
            counted = int(losses or 0) >= settings.max_node_losses
        note = "counted" if counted else "not counted against max_attempts"
        data = {"node_id": node_id, "cause": cause, "counted": counted}
        record_event(s, NODE_LOST, f"{what} ({note})", job_id=job_id, attempt=attempt, data=data)
        if cancelled:
            transition(s, job, CANCELLED, f"cancel requested; {what}")
            cancel_dependents(s, job, f"pretraining job {job.id} was cancelled")
            new: JobStatus = CANCELLED
        elif counted:
            limit = f"more than {settings.max_node_losses} lost nodes"
            new = _retry_or_fail(s, job, f"{what} ({limit})", what, settings)
        else:
            transition(
                s,
                job,
                QUEUED,
                f"{what}; attempt {attempt + 1} will resume from the checkpoint "
                f"({job.failed_attempts} of {job.max_attempts} allowed failures used)",
                values={"attempt": attempt + 1, "claimed_by": None, "queued_at": utcnow()},
            )
            new = QUEUED
        _end_attempt(s, job_id, attempt, LOST, what)
        return new


def cancel_stuck(
    db: Database, job_id: str, attempt: int, orchestrator_id: str, grace: float
) -> bool:
    """A cancelled job that ignored the cooperative request: CANCELLED after ray.kill."""
    with db.session() as s:
        job = s.scalars(select(Job).where(_guard(job_id, attempt, orchestrator_id))).first()
        if job is None:
            return False
        transition(s, job, CANCELLED, f"did not stop within {grace:g} s of the cancel; killed")
        cancel_dependents(s, job, f"pretraining job {job.id} was cancelled")
        _end_attempt(s, job_id, attempt, CANCELLED, None)
        return True


def requeue_on_shutdown(db: Database, job_id: str, attempt: int, orchestrator_id: str) -> bool:
    """The orchestrator stops and takes its local Ray down: requeue without counting a
    failure (the next attempt resumes from the checkpoint)."""
    with db.session() as s:
        job = s.scalars(select(Job).where(_guard(job_id, attempt, orchestrator_id))).first()
        if job is None:
            return False
        transition(
            s,
            job,
            QUEUED,
            f"orchestrator {orchestrator_id} stopped its local Ray; attempt {attempt + 1} "
            "will resume from the checkpoint",
            values={"attempt": attempt + 1, "claimed_by": None, "queued_at": utcnow()},
        )
        _end_attempt(s, job_id, attempt, ABANDONED, None)
        return True


def _end_attempt(
    s: Session, job_id: str, attempt: int, status: AttemptStatus, error: str | None
) -> None:
    s.execute(
        update(Attempt)
        .where(Attempt.job_id == job_id, Attempt.number == attempt)
        .values(status=status, ended_at=utcnow(), error=error)
    )


def rename_attempt_actor(db: Database, job_id: str, attempt: int, name: str) -> None:
    """The attempt runs in another actor than the one it was claimed with."""
    with db.session() as s:
        s.execute(
            update(Attempt)
            .where(Attempt.job_id == job_id, Attempt.number == attempt)
            .values(actor_name=name)
        )


def mark_released(db: Database, job_id: str, attempt: int) -> None:
    """The attempt's actor has been killed (its resources are free)."""
    with db.session() as s:
        s.execute(
            update(Attempt)
            .where(Attempt.job_id == job_id, Attempt.number == attempt)
            .values(released=True)
        )
