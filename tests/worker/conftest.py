"""Shared fixtures: a private DINO_HOME with the embedded sqlite MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import worker  # noqa: F401  (sets the telemetry-off environment)


@pytest.fixture(scope="session")
def dino_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private DINO_HOME for the whole test session (embedded sqlite store inside)."""
    home = tmp_path_factory.mktemp("dino_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DINO_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home


@pytest.fixture(scope="session")
def sqlite_uri(dino_home: Path) -> str:
    return f"sqlite:///{dino_home / 'mlflow.db'}"
