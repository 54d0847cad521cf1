"""What the scheduling loop reads each pass: ready jobs, cancel requests, orphans, grids."""

from __future__ import annotations

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import aliased

from orchestrator.db import Database
from orchestrator.models import Attempt, Grid, Job, utcnow
from worker.contracts import PAUSED, QUEUED, RUNNING, SUCCEEDED


def ready_jobs(db: Database, limit: int) -> list[Job]:
    """QUEUED jobs that may start now: priority (high first), then FIFO.

    Excludes retries still in back-off and eval jobs whose pretraining has not succeeded.
    """
    dep = aliased(Job)
    now = utcnow()
    stmt = (
        select(Job)
        .outerjoin(dep, Job.depends_on == dep.id)
        .where(
            Job.status == QUEUED,
            Job.cancel_requested.is_(False),
            (Job.not_before.is_(None)) | (Job.not_before <= now),
            (Job.depends_on.is_(None)) | (dep.status == SUCCEEDED),
        )
        .order_by(
            Job.priority.desc(),
            Job.queued_at,
            func.coalesce(Job.combination, 0),
            Job.id,
        )
        .limit(limit)
    )
    with db.session() as s:
        return list(s.scalars(stmt))


def cancel_requests(db: Database, orchestrator_id: str) -> list[str]:
    """Ids of this orchestrator's running jobs whose cancel was requested."""
    stmt = select(Job.id).where(
        Job.status == RUNNING, Job.claimed_by == orchestrator_id, Job.cancel_requested.is_(True)
    )
    with db.session() as s:
        return list(s.scalars(stmt))


def running_jobs(db: Database) -> list[tuple[str, int, str | None]]:
    """(job id, attempt, claimed_by) of every RUNNING job."""
    with db.session() as s:
        rows = s.execute(select(Job.id, Job.attempt, Job.claimed_by).where(Job.status == RUNNING))
        return [(r[0], int(r[1]), r[2]) for r in rows]


def attempt_actor(db: Database, job_id: str, attempt: int) -> str | None:
    """The name of the Ray actor that runs (or ran) this attempt, as claimed."""
    stmt = select(Attempt.actor_name).where(Attempt.job_id == job_id, Attempt.number == attempt)
    with db.session() as s:
        return s.scalar(stmt)


def take_over(db: Database, job_id: str, attempt: int, old: str | None, new: str) -> bool:
    """Move a RUNNING job's claim from ``old`` (a dead orchestrator) to ``new``."""
    owner = Job.claimed_by.is_(None) if old is None else Job.claimed_by == old
    with db.session() as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING, Job.attempt == attempt, owner)
            .values(claimed_by=new, updated_at=utcnow())
        )
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def unreleased_attempts(db: Database, live: set[str]) -> list[tuple[str, int, str]]:
    """(job id, attempt, actor name) of ended attempts of dead orchestrators whose actor may
    still hold resources (not an actor that a running attempt has taken over since)."""
    in_use = select(Attempt.actor_name).where(Attempt.status == RUNNING)
    stmt = select(Attempt.job_id, Attempt.number, Attempt.actor_name).where(
        Attempt.released.is_(False),
        Attempt.status != RUNNING,
        Attempt.orchestrator_id.not_in(live),
        Attempt.actor_name.not_in(in_use),
    )
    with db.session() as s:
        return [(r[0], int(r[1]), r[2]) for r in s.execute(stmt)]


def close_finished_grids(db: Database) -> list[tuple[str, str | None, bool]]:
    """Stamp ``finished_at`` on grids whose jobs have all ended.

    Returns (grid id, MLflow parent run id, every job succeeded) for each grid closed now.
    """
    live = exists().where(Job.grid_id == Grid.id, Job.status.in_([QUEUED, RUNNING, PAUSED]))
    closed: list[tuple[str, str | None, bool]] = []
    with db.session() as s:
        grids = s.scalars(select(Grid).where(Grid.finished_at.is_(None), ~live)).all()
        for grid in grids:
            res = s.execute(
                update(Grid)
                .where(Grid.id == grid.id, Grid.finished_at.is_(None))
                .values(finished_at=utcnow())
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                continue
            bad = s.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.grid_id == grid.id, Job.status != SUCCEEDED)
            )
            closed.append((grid.id, grid.mlflow_parent_run_id, not bad))
    return closed
