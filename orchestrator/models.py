"""Database tables (SQLAlchemy 2 typed ORM): the source of truth for users, grids and jobs.

Times are stored as naive UTC and read back as aware UTC (:class:`UTCDateTime`), so SQLite and
PostgreSQL behave alike. Ids are short prefixed random strings: job directories and MLflow tags
derived from them never collide with those of an earlier database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Current time, aware UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """``<prefix>-<12 hex>``, e.g. ``job-3f2a9c1b7d4e``."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes stored as naive UTC (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class User(Base):
    """A person or robot calling the api; ``token_hash`` is sha256 hex of its bearer token."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="ck_users_role"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class Grid(Base):
    """An ablation grid: a base config, axes/override lists, and the jobs they expand to."""

    __tablename__ = "grids"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    base_config: Mapped[dict[str, Any]]
    axes: Mapped[dict[str, Any]]
    overrides: Mapped[list[Any]]
    seeds: Mapped[list[Any]] = mapped_column(server_default=text("'[]'"))  # [] = once each
    # orchestrator.early_stopping.EarlyStopping as JSON; None = every run to its last epoch
    early_stopping: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the GridRequest as submitted (then as extended); None for grids stored before 0003
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    evals: Mapped[list[Any]]
    n_combinations: Mapped[int] = mapped_column(Integer)
    mlflow_experiment: Mapped[str] = mapped_column(String(300))
    mlflow_parent_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Job(Base):
    """One pretraining or evaluation run, across all its attempts."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_queue", "status", "priority", "created_at"),
        CheckConstraint("attempt >= 1", name="ck_jobs_attempt"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    grid_id: Mapped[str | None] = mapped_column(ForeignKey("grids.id"), index=True)
    depends_on: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    combination: Mapped[int | None] = mapped_column(Integer)
    axis_values: Mapped[dict[str, Any]]
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(String(16))
    resources: Mapped[dict[str, Any]]
    eval_options: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    storage_uri: Mapped[str] = mapped_column(Text)
    source_checkpoint: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    not_before: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_by: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]
    queued_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    step: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]
    result_metrics: Mapped[dict[str, Any]]
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_experiment: Mapped[str] = mapped_column(String(300))
    collapsed: Mapped[bool] = mapped_column(Boolean, default=False)
    collapse_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    # early stopping: the epoch the next (or running) attempt trains to; None = the last
    until_epoch: Mapped[int | None] = mapped_column(Integer)
    # orchestrator.reuse: what identifies the run (kind, config, options, code version)
    reuse_key: Mapped[str | None] = mapped_column(String(64), index=True)
    reused_from: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))


class RungDecision(Base):
    """One early-stopping decision: a grid combination ranked at a rung epoch on the mean of
    its seeds' metric, promoted (trains on) or stopped (STOPPED_EARLY)."""

    __tablename__ = "rung_decisions"
    __table_args__ = (UniqueConstraint("grid_id", "combination", "rung", name="uq_rung_decisions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grid_id: Mapped[str] = mapped_column(ForeignKey("grids.id"), index=True)
    combination: Mapped[int] = mapped_column(Integer)
    rung: Mapped[int] = mapped_column(Integer)  # the epoch
    metric: Mapped[str] = mapped_column(String(64))  # e.g. knn_top1_k20
    value: Mapped[float | None] = mapped_column(
        Float
    )  # mean over the seeds at the rung; None = not measured
    n_seeds: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer)  # 1 = best
    cohort: Mapped[int] = mapped_column(Integer)  # combinations ranked at this rung
    kept: Mapped[int] = mapped_column(Integer)  # how many of them train on
    promoted: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime]


class Attempt(Base):
    """One try at running a job: one detached Ray actor ``dino-job-<id>-a<number>``."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_attempts_job_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    actor_name: Mapped[str] = mapped_column(String(100))
    orchestrator_id: Mapped[str] = mapped_column(String(64))
    queued_at: Mapped[datetime]
    claimed_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    released: Mapped[bool] = mapped_column(Boolean, default=False)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """Something that happened to a job (every transition, with its reason) or a grid."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    grid_id: Mapped[str | None] = mapped_column(ForeignKey("grids.id"), index=True)
    attempt: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]]


class IdempotencyKey(Base):
    """(user, key) -> the object a request created; the unique constraint stops duplicates."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(32))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Orchestrator(Base):
    """A running scheduler process: heartbeat (its lease on claimed jobs) and cluster view."""

    __tablename__ = "orchestrators"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    ray_address: Mapped[str] = mapped_column(Text, default="")
    cluster: Mapped[dict[str, Any]]
