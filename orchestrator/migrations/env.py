"""Alembic environment: runs on the connection that :func:`orchestrator.db.migrate` passes in.

Run by hand (e.g. ``alembic revision --autogenerate``) with ``-x url=sqlite:///path.db``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from orchestrator.models import Base

config = context.config


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        _run(conn)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with -x url=sqlite:///path/dino.db")
    with create_engine(url).connect() as own:
        _run(own)
        own.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run them online")
run_migrations_online()
