"""Driving a :class:`Scheduler` in a background thread of the test, and waiting on the DB."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import ray
from sqlalchemy import select

from orchestrator import registry
from orchestrator.db import Database
from orchestrator.models import Attempt, Event, Job, Orchestrator, utcnow
from orchestrator.scheduler import Scheduler
from orchestrator.settings import OrchestratorSettings

JOB_FN = "tests.orchestrator.jobfns:steps_job"
FAST: dict[str, Any] = {
    "job_fn": JOB_FN,
    "namespace": "dino-test",
    "mlflow_setup": False,
    "poll_interval_s": 0.05,
    "actor_wait_s": 0.5,
    "heartbeat_s": 0.5,
    "lease_s": 5.0,
    "cancel_grace_s": 5.0,
    "backoff_base_s": 0.3,
    "backoff_max_s": 1.0,
}


def fast_settings(**overrides: Any) -> OrchestratorSettings:
    return OrchestratorSettings(**{**FAST, **overrides})


@contextmanager
def running_scheduler(db: Database, **overrides: Any) -> Iterator[Scheduler]:
    """A scheduler ticking in a thread; on exit it stops and kills what it still tracks."""
    sched = Scheduler(db, fast_settings(**overrides))
    sched.start()
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while not stop.is_set():
                sched.tick()
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=loop, name="scheduler", daemon=True)
    thread.start()
    try:
        yield sched
    finally:
        stop.set()
        thread.join(60)
        for t in list(sched.tracked.values()):
            ray.kill(t.actor, no_restart=True)
        sched.stop(owns_ray=False)
    if errors:
        raise errors[0]


def wait_until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def job_row(db: Database, job_id: str) -> Job:
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def status_of(db: Database, job_id: str) -> str:
    return job_row(db, job_id).status


def attempts_of(db: Database, job_id: str) -> list[Attempt]:
    with db.session() as s:
        stmt = select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)
        return list(s.scalars(stmt))


def events_of(db: Database, job_id: str, kind: str | None = None) -> list[Event]:
    with db.session() as s:
        stmt = select(Event).where(Event.job_id == job_id).order_by(Event.id)
        if kind is not None:
            stmt = stmt.where(Event.kind == kind)
        return list(s.scalars(stmt))


def all_ended(db: Database, job_ids: list[str]) -> bool:
    terminal = {"SUCCEEDED", "FAILED", "CANCELLED", "COLLAPSED", "DIVERGED"}
    return all(status_of(db, j) in terminal for j in job_ids)


def age_heartbeat(db: Database, orchestrator_id: str) -> None:
    """Make an orchestrator look dead: its heartbeat stopped long ago (as after SIGKILL)."""
    with db.session() as s:
        row = s.get(Orchestrator, orchestrator_id)
        assert row is not None
        row.heartbeat_at = utcnow() - timedelta(minutes=10)
        row.hostname = "another-host"


def dead_orchestrator(db: Database) -> str:
    """An orchestrator row of another host whose heartbeat stopped long ago."""
    dead = "orch-elsewhere-1"
    registry.register(db, dead, "", {})
    age_heartbeat(db, dead)
    return dead
