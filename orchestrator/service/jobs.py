"""Submitting, reading and cancelling jobs (owner-scoped; admins see every job)."""

from __future__ import annotations

from typing import TypedDict, Unpack

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.capacity import Bundle
from orchestrator.db import Database
from orchestrator.dependencies import cancel_dependents
from orchestrator.errors import StaleStateError
from orchestrator.models import Attempt, Event, Job, utcnow
from orchestrator.schemas import AttemptView, EventView, JobRequest, JobView, UserView
from orchestrator.service._build import add_evals, add_job, eval_resources
from orchestrator.service._common import job_view, load_job, request_hash, scoped
from orchestrator.service.idempotency import run_idempotent
from orchestrator.service.runnable import MemoryPolicy, PathPolicy
from orchestrator.service.sources import resolve_source
from orchestrator.service.submit_check import check_job
from orchestrator.states import check_transition, record_event
from orchestrator.states import transition as move
from worker.contracts import CANCELLED, PAUSED, QUEUED, RUNNING, STATES

MAX_PAGE = 1000


class JobSubmitOptions(TypedDict, total=False):
    """The keyword options of :func:`submit_job_with_replay`."""

    idempotency_key: str | None
    paths: PathPolicy | None
    memory: MemoryPolicy | None
    cluster: list[Bundle] | None


def submit_job(
    db: Database, user: UserView, request: JobRequest, **options: Unpack[JobSubmitOptions]
) -> JobView:
    """Check the request once (:func:`check_job`), then queue the job (plus any requested
    eval jobs). An evaluation's source must be one of ``user``'s jobs
    (:func:`resolve_source`).

    Raises :class:`JobValidationError` (a ``ConfigError``) listing every invalid field,
    :class:`NotFoundError` for a source job the user may not see and
    :class:`IdempotencyConflictError` when the key was used for a different request.
    """
    return submit_job_with_replay(db, user, request, **options)[0]


def submit_job_with_replay(
    db: Database,
    user: UserView,
    request: JobRequest,
    *,
    idempotency_key: str | None = None,
    paths: PathPolicy | None = None,
    memory: MemoryPolicy | None = None,
    cluster: list[Bundle] | None = None,
) -> tuple[JobView, bool]:
    """:func:`submit_job`, and whether the answer replays an earlier request's job
    (``Idempotent-Replayed``)."""
    plan = check_job(request, paths=paths, memory=memory, cluster=cluster)
    config = plan.config

    def create(session: Session) -> str:
        now = utcnow()
        source = resolve_source(session, user, request, plan.checkpoint_job)
        job = add_job(
            session,
            owner_id=user.id,
            kind=request.kind,
            name=request.name or request.kind,
            config=config,
            resources=request.resources,
            priority=request.priority,
            max_attempts=request.max_attempts,
            experiment=request.experiment_name,
            now=now,
            reason=f"submitted by {user.name}",
            eval_options=plan.eval_options,
            tags=request.tags,
            depends_on=source.depends_on,
            source_checkpoint=source.checkpoint,
            reuse=request.reuse,
        )
        add_evals(
            session,
            job,
            config,
            request.evals,
            eval_resources(request.resources),
            now,
            plan.evals_options,
            reuse=request.reuse,
        )
        return job.id

    made = run_idempotent(db, user, idempotency_key, "job", request_hash(request), create)
    return get_job(db, user, made.object_id), made.replayed


def get_job(db: Database, user: UserView, job_id: str) -> JobView:
    with db.session() as s:
        return job_view(load_job(s, user, job_id))


def list_jobs(
    db: Database,
    user: UserView,
    *,
    status: str | None = None,
    grid_id: str | None = None,
    kind: str | None = None,
    owner_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[JobView]:
    """Newest first. ``owner_id`` narrows an admin's view; users only ever see their own."""
    if status is not None and status not in STATES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATES)}")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    stmt = scoped(select(Job), user, Job.owner_id)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if grid_id is not None:
        stmt = stmt.where(Job.grid_id == grid_id)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    if owner_id is not None:
        stmt = stmt.where(Job.owner_id == owner_id)
    stmt = stmt.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    with db.session() as s:
        return [job_view(j) for j in s.scalars(stmt)]


def cancel_job(db: Database, user: UserView, job_id: str, reason: str | None = None) -> JobView:
    """Cancel a job: a queued one at once; a running one is stopped by the orchestrator.

    Cancelling a cancelled job changes nothing; any other ended job raises
    :class:`IllegalTransitionError` (naming its state).
    """
    why = reason or f"cancelled by {user.name}"
    for _ in range(5):
        try:
            with db.session() as s:
                job = load_job(s, user, job_id, lock=True)
                cancel_in_session(s, job, why)
            return get_job(db, user, job_id)
        except StaleStateError:
            continue  # the orchestrator claimed it meanwhile: read it again
    raise StaleStateError(f"job {job_id} kept changing state while being cancelled: try again")


def cancel_in_session(session: Session, job: Job, reason: str) -> None:
    """Cancel ``job`` (already loaded in ``session``): see :func:`cancel_job`."""
    if job.status == CANCELLED:
        return
    if job.status in (QUEUED, PAUSED):  # nothing runs: cancelled at once
        move(session, job, CANCELLED, reason)
        cancel_dependents(session, job, f"pretraining job {job.id} was cancelled")
        return
    check_transition(job.id, job.status, CANCELLED)
    if job.status == RUNNING and not job.cancel_requested:
        res = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == RUNNING, Job.attempt == job.attempt)
            .values(cancel_requested=True, updated_at=utcnow())
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleStateError(f"job {job.id} left RUNNING while being cancelled")
        record_event(
            session,
            "cancel_requested",
            reason,
            job_id=job.id,
            grid_id=job.grid_id,
            attempt=job.attempt,
        )


def job_events(
    db: Database, user: UserView, job_id: str, *, after_id: int = 0, limit: int = 500
) -> list[EventView]:
    """The job's event log, oldest first; page with ``after_id`` = last id seen."""
    with db.session() as s:
        load_job(s, user, job_id)
        stmt = (
            select(Event)
            .where(Event.job_id == job_id, Event.id > after_id)
            .order_by(Event.id)
            .limit(min(max(limit, 1), MAX_PAGE))
        )
        return [EventView.model_validate(e) for e in s.scalars(stmt)]


def job_attempts(db: Database, user: UserView, job_id: str) -> list[AttemptView]:
    """Every attempt of the job, first first."""
    with db.session() as s:
        load_job(s, user, job_id)
        stmt = select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)
        return [AttemptView.model_validate(a) for a in s.scalars(stmt)]
