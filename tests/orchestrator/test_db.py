"""Opening the database: migrations, SQLite settings, URLs, concurrent writers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from orchestrator.db import make_engine, open_database
from orchestrator.models import Base, Job, User, utcnow
from orchestrator.schemas import JobRequest
from orchestrator.service import cancel_job, create_user, hash_token, list_jobs, submit_job

TABLES = {
    "users",
    "grids",
    "jobs",
    "attempts",
    "events",
    "idempotency_keys",
    "orchestrators",
    "rung_decisions",
}


def test_migrations_create_every_table_once(db_url: str) -> None:
    db = open_database(db_url)
    again = open_database(db_url)  # second start: nothing to do, nothing breaks
    try:
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        with db.session() as s:
            assert s.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
                "0003"
            ]
    finally:
        again.dispose()
        db.dispose()


def test_models_and_migrations_describe_the_same_schema(db_url: str) -> None:
    db = open_database(db_url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], "orchestrator/models.py and the migrations differ: add a migration"
    finally:
        db.dispose()


def test_concurrent_first_starts_migrate_once(db_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_database(db_url).dispose()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = open_database(db_url)
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    db.dispose()


def test_sqlite_runs_wal_with_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'sub' / 'dino.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    now = utcnow()
    orphan = Job(id="job-orphan", owner_id="usr-nobody", created_at=now)  # no such user
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(orphan)
    db.dispose()


def test_unsupported_urls_say_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"use sqlite:///path/dino\.db or postgresql"):
        make_engine("mysql://u@h/d")
    with pytest.raises(ValueError, match=r"postgresql\+psycopg://"):
        make_engine("postgresql+psycopg2://u@h/d")


def test_concurrent_api_and_scheduler_writers_never_see_a_locked_database(db_url: str) -> None:
    """Six connections at once: submits, read-then-write cancels, listings, status moves."""
    db = open_database(db_url)
    users = [create_user(db, f"u{i}", hash_token(f"t{i}")) for i in range(3)]
    errors: list[BaseException] = []
    submitted: list[str] = []
    lock = threading.Lock()

    def api(i: int) -> None:
        try:
            for n in range(15):
                job = submit_job(db, users[i], JobRequest(name=f"j{n}"))
                with lock:
                    submitted.append(job.id)
                if n % 3 == 0:
                    cancel_job(db, users[i], job.id)
                list_jobs(db, users[i], limit=5)
        except BaseException as err:
            errors.append(err)

    def scheduler() -> None:
        try:
            for _ in range(40):
                with db.session() as s:
                    queued = s.query(Job).filter(Job.status == "QUEUED").limit(2).all()
                    for job in queued:
                        job.status_reason = "seen by the scheduler"
                        job.updated_at = utcnow()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=api, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=scheduler) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session() as s:
        assert s.query(Job).count() == len(submitted) == 45
        assert s.query(Job).filter(Job.status == "CANCELLED").count() == 15
        assert s.query(User).count() == 3
    db.dispose()
