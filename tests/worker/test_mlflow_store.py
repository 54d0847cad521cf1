"""An embedded sqlite MLflow store is created (migrated) once, before jobs share it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from worker.mlflow_store import prepare_tracking_store


def test_sqlite_store_gets_its_tables(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    prepare_tracking_store(f"sqlite:///{db}")
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert {"experiments", "runs", "metrics", "alembic_version"} <= tables
    prepare_tracking_store(f"sqlite:///{db}")  # idempotent on an existing store


def test_other_stores_are_left_alone(tmp_path: Path) -> None:
    # nothing listens there: a call that tried to reach it would fail or hang
    prepare_tracking_store("http://127.0.0.1:9")
    prepare_tracking_store(str(tmp_path / "mlruns"))
    assert not (tmp_path / "mlruns").exists()
