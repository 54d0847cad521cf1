"""worker/deployment.py: the deployment-wide settings every layer reads, and their defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.deployment import (
    default_artifact_root,
    default_database_url,
    default_tracking_uri,
    dino_home,
    jobs_root,
)

VARIABLES = ("DINO_HOME", "DINO_STORAGE_URI", "MLFLOW_TRACKING_URI", "DINO_DATABASE_URL")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DINO_HOME", str(tmp_path / "home"))
    return (tmp_path / "home").resolve()


def test_everything_defaults_to_files_under_dino_home(home: Path) -> None:
    assert dino_home() == home and home.is_dir()
    assert default_database_url() == f"sqlite:///{home}/dino.db"
    assert default_tracking_uri() == f"sqlite:///{home}/mlflow.db"
    assert default_artifact_root() == (home / "mlartifacts").as_uri()
    assert jobs_root() == str(home / "jobs")


def test_production_values_come_from_their_variables(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DINO_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:5/d")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("DINO_STORAGE_URI", "s3://bucket/dino")
    assert default_database_url() == "postgresql+psycopg://u@127.0.0.1:5/d"
    assert default_tracking_uri() == "http://127.0.0.1:5000"
    assert jobs_root() == "s3://bucket/dino"
    assert dino_home() == home  # still the local state (logs, token)
