"""Eval jobs wait on their pretraining job: released with its checkpoint, or cancelled."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.models import Job, utcnow
from orchestrator.states import record_event, transition
from worker.contracts import CANCELLED, QUEUED


def release_dependents(session: Session, job: Job, checkpoint_uri: str | None) -> int:
    """Point the queued eval jobs of ``job`` at its final checkpoint; returns how many.

    ``queued_at`` becomes now: they are ready from this moment (scheduling latency counts
    from here, not from the grid's submission).
    """
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.depends_on == job.id, Job.status == QUEUED)
        .values(source_checkpoint=checkpoint_uri, queued_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    count = int(res.rowcount)  # type: ignore[attr-defined]
    if count:
        record_event(
            session,
            "dependents_released",
            f"{count} eval job(s) may start: pretraining succeeded",
            job_id=job.id,
            grid_id=job.grid_id,
            data={"checkpoint_uri": checkpoint_uri},
        )
    return count


def cancel_dependents(session: Session, job: Job, reason: str) -> list[str]:
    """Cancel every queued job that waits on ``job`` (with ``reason``); returns their ids."""
    waiting = session.scalars(
        select(Job).where(Job.depends_on == job.id, Job.status == QUEUED).with_for_update()
    ).all()
    for dep in waiting:
        transition(session, dep, CANCELLED, reason)
    return [d.id for d in waiting]
