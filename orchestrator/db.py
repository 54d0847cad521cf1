"""Opening the job database: SQLite by default, PostgreSQL via ``DINO_DATABASE_URL``.

SQLite runs in WAL mode with a 30 s busy timeout and foreign keys on, and every transaction
starts with ``BEGIN IMMEDIATE``: a writer waits for the lock up front instead of failing with
"database is locked" when its read snapshot turns stale, so the api and the orchestrator can
write concurrently. Migrations (Alembic, shipped in ``orchestrator/migrations``) run on open;
on PostgreSQL they hold an advisory lock so two processes starting together do not race.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from worker.deployment import default_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x44494E4F  # "DINO": advisory lock id serialising migrations
_MIGRATION_THREAD_LOCK = threading.Lock()


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30.0})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN: the "begin" hook below decides
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_engine(url: str) -> Engine:
    """An engine for ``url``: ``sqlite:///path`` or ``postgresql+psycopg://…``."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        driver = make_url(url).get_driver_name()
        if driver != "psycopg":
            raise ValueError(
                f"database URL uses driver {driver!r}: write postgresql+psycopg://… (psycopg 3)"
            )
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise ValueError(
        f"unsupported database URL scheme {backend!r} in DINO_DATABASE_URL: "
        "use sqlite:///path/dino.db or postgresql+psycopg://user@host:port/db"
    )


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent, safe under concurrent starts).

    Alembic's context is process-global, so threads take turns; across processes PostgreSQL
    serialises on an advisory lock and SQLite on the ``BEGIN IMMEDIATE`` write lock taken
    before the version table is read.
    """
    with _MIGRATION_THREAD_LOCK, engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                command.upgrade(_alembic_config(conn), "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
        else:
            with conn.begin():
                command.upgrade(_alembic_config(conn), "head")


class Database:
    """An engine plus a session factory; share one per process."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def display_url(self) -> str:
        """The URL with any password hidden, for logs and cluster_info."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str | None = None, *, run_migrations: bool = True) -> Database:
    """Open (and by default migrate) the database at ``url`` or :func:`default_database_url`."""
    resolved = url or default_database_url()
    engine = make_engine(resolved)
    if run_migrations:
        migrate(engine)
    return Database(resolved, engine)
