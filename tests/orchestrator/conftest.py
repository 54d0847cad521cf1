"""Fixtures: a database per test (SQLite file, and PostgreSQL when DINO_TEST_POSTGRES_URL is
set), users, one Ray head node for the whole session (2 CPUs) and a scheduler driver."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orchestrator.db import Database, open_database
from orchestrator.schemas import UserView
from orchestrator.service import create_user, hash_token
from tests.orchestrator.backends import BACKENDS
from tests.orchestrator.raynodes import RayNode, connected, kill_node, start_head

PG_ENV = "DINO_TEST_POSTGRES_URL"


def _postgres_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new schema on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dino.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set (start one with scripts/postgres.sh start)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _postgres_schema_url(base, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def db(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("DINO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DINO_STORAGE_URI", str(tmp_path / "jobs"))
    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def alice(db: Database) -> UserView:
    return create_user(db, "alice", hash_token("alice-token"))


@pytest.fixture
def bob(db: Database) -> UserView:
    return create_user(db, "bob", hash_token("bob-token"))


@pytest.fixture
def admin(db: Database) -> UserView:
    return create_user(db, "root", hash_token("admin-token"), role="admin")


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayNode]:
    """One 2-CPU Ray head node shared by every test of the session."""
    node = start_head(num_cpus=2)
    try:
        yield node
    finally:
        kill_node(node)


@pytest.fixture(scope="module")
def ray_conn(ray_head: RayNode) -> Iterator[RayNode]:
    """This test process connected to the shared head (per module, so no Ray connection
    outlives the modules that need it)."""
    with connected(ray_head) as node:
        yield node
