"""The job state machine and the one function that moves a job between states.

QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | COLLAPSED | DIVERGED; QUEUED ->
CANCELLED; RUNNING -> QUEUED is a retry (attempt + 1). Early stopping: RUNNING -> PAUSED at
a rung, then PAUSED -> QUEUED (promoted, attempt + 1) | STOPPED_EARLY | CANCELLED. The
status names are defined in ``worker/contracts/status.py``. Each move is a conditional
UPDATE (``WHERE id = ? AND status = <from>``) so two processes never both make it, and each
one is recorded as an event with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import insert, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from orchestrator.errors import IllegalTransitionError, StaleStateError
from orchestrator.models import Event, Job, utcnow
from worker.contracts import (
    CANCELLED,
    COLLAPSED,
    DIVERGED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    STOPPED_EARLY,
    SUCCEEDED,
    TERMINAL,
)

ALLOWED: Final[dict[str, frozenset[str]]] = {
    QUEUED: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({QUEUED, PAUSED, SUCCEEDED, FAILED, CANCELLED, COLLAPSED, DIVERGED}),
    PAUSED: frozenset({QUEUED, STOPPED_EARLY, CANCELLED}),
}


def check_transition(job_id: str, from_status: str, to_status: str) -> None:
    """Raise :class:`IllegalTransitionError` unless ``from_status -> to_status`` is allowed."""
    if to_status not in ALLOWED.get(from_status, frozenset()):
        raise IllegalTransitionError(job_id, from_status, to_status)


def record_event(
    session: Session,
    kind: str,
    reason: str,
    *,
    job_id: str | None = None,
    grid_id: str | None = None,
    attempt: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Append one row to the event log."""
    session.execute(
        insert(Event).values(
            job_id=job_id,
            grid_id=grid_id,
            attempt=attempt,
            at=utcnow(),
            kind=kind,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            data=dict(data or {}),
        )
    )


def transition(
    session: Session,
    job: Job,
    to_status: str,
    reason: str,
    *,
    values: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Move ``job`` from its loaded status to ``to_status`` and log the event.

    Raises :class:`IllegalTransitionError` for a move the machine forbids and
    :class:`StaleStateError` when the row's status or attempt changed since ``job`` was read.
    ``values`` are further columns set in the same UPDATE.
    """
    from_status = job.status
    check_transition(job.id, from_status, to_status)
    now = utcnow()
    cols: dict[str, Any] = {"status": to_status, "status_reason": reason, "updated_at": now}
    if to_status in TERMINAL:
        cols["finished_at"] = now
    cols.update(values or {})
    res = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == from_status, Job.attempt == job.attempt)
        .values(**cols)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleStateError(
            f"job {job.id} is no longer {from_status} attempt {job.attempt}: "
            f"another process changed it before {from_status} -> {to_status}"
        )
    record_event(
        session,
        "transition",
        reason,
        job_id=job.id,
        grid_id=job.grid_id,
        attempt=job.attempt,
        from_status=from_status,
        to_status=to_status,
        data=data,
    )
    for key, value in cols.items():
        set_committed_value(job, key, value)
