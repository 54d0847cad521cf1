"""Helpers shared by the service modules: owner scoping and ORM -> view conversion."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import Session

from orchestrator.errors import NotFoundError
from orchestrator.models import Grid, Job
from orchestrator.schemas import JobView, UserView

T = TypeVar("T")


def scoped(stmt: Select[T], user: UserView, owner_col: Any) -> Select[T]:
    """Restrict ``stmt`` to ``user``'s rows unless the user is an admin."""
    return stmt if user.is_admin else stmt.where(owner_col == user.id)


def load_job(session: Session, user: UserView, job_id: str, *, lock: bool = False) -> Job:
    """The job if ``user`` may see it; :class:`NotFoundError` otherwise (no existence leak)."""
    job = session.get(Job, job_id, with_for_update=lock)
    if job is None or (not user.is_admin and job.owner_id != user.id):
        raise NotFoundError(f"no job {job_id!r} visible to user {user.name!r}")
    return job


def load_grid(session: Session, user: UserView, grid_id: str) -> Grid:
    grid = session.get(Grid, grid_id)
    if grid is None or (not user.is_admin and grid.owner_id != user.id):
        raise NotFoundError(f"no grid {grid_id!r} visible to user {user.name!r}")
    return grid


def job_view(job: Job) -> JobView:
    return JobView.model_validate(job)


def request_hash(request: BaseModel) -> str:
    """Stable digest of a request body, to tell a retry from a different request."""
    canon = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()
