"""Shared fixtures: a private DINO_HOME with the embedded sqlite MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.worker.helpers import mlflow_server


@pytest.fixture(scope="package")
def dino_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private DINO_HOME for tests/worker (embedded sqlite store inside); restored after."""
    home = tmp_path_factory.mktemp("dino_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DINO_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home


@pytest.fixture(scope="package")
def sqlite_uri(dino_home: Path) -> str:
    """The embedded store's URI; its tables are created once here (seconds on this machine)."""
    uri = f"sqlite:///{dino_home / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture(scope="package")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real ``mlflow server`` on 127.0.0.1 for the session, stopped by PID afterwards."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow_server")) as url:
        yield url
