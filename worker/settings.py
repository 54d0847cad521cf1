"""Where the embedded default keeps its state, and how production overrides it.

``DINO_HOME`` (default ``./.dino``) holds the SQLite job database, the MLflow sqlite store and
artifacts, and per-job directories. ``DINO_DATA_DIR`` is separate: it is where datasets live.
"""

from __future__ import annotations

import os
from pathlib import Path


def dino_home() -> Path:
    """The state directory (created on first use)."""
    home = Path(os.environ.get("DINO_HOME", Path.cwd() / ".dino")).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded sqlite store under ``DINO_HOME``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{dino_home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    """Artifact root for experiments created in the embedded store."""
    return (dino_home() / "mlartifacts").as_uri()


def jobs_root() -> str:
    """Parent of per-job storage (``DINO_STORAGE_URI`` for shared storage, e.g. s3://bucket/dino)."""
    return os.environ.get("DINO_STORAGE_URI", str(dino_home() / "jobs"))
