"""Deployment-wide settings: where this installation keeps its state, read by every layer.

The one module that reads these variables; the api, the orchestrator and the worker import it
(it sits in the lowest layer that needs it and imports nothing of the project). Each value is
read from the environment when asked for, so a process that changes it sees the change.

- ``DINO_HOME`` (default ``./.dino``): local state: the SQLite job database, the embedded
  MLflow store and its artifacts, per-job directories, logs, the CLI's saved token.
- ``DINO_STORAGE_URI`` (default ``<DINO_HOME>/jobs``): parent of each job's storage; shared
  storage (``s3://bucket/dino``, an NFS path) when jobs run on several nodes.
- ``MLFLOW_TRACKING_URI`` (default ``sqlite:///<DINO_HOME>/mlflow.db``): the MLflow store.
- ``DINO_DATABASE_URL`` (default ``sqlite:///<DINO_HOME>/dino.db``): the job database.

``DINO_DATA_DIR`` is separate: where data sets live (read by ``dino_core.data.paths``);
``DINO_DATASET_ROOTS`` (``os.pathsep``-separated) lists the directories a job may read data
sets from: checked by the api at submit and by the worker where the data is opened.
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_DATASETS = "/usr/share/datasets"


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


def default_database_url() -> str:
    """``DINO_DATABASE_URL`` if set, else ``sqlite:///<DINO_HOME>/dino.db``."""
    url = os.environ.get("DINO_DATABASE_URL")
    return url if url else f"sqlite:///{dino_home() / 'dino.db'}"


def _shared_data_dir() -> Path | None:
    """The repository's ``shared/data`` (next to the checkout or an ancestor of it)."""
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return None


def default_dataset_roots() -> list[str]:
    """``DINO_DATA_DIR`` (if set), ``/usr/share/datasets`` and the repo's ``shared/data``
    (the places :mod:`dino_core.data.paths` searches; not imported here: it pulls in torch)."""
    roots: list[str] = []
    env = os.environ.get("DINO_DATA_DIR", "").strip()
    if env:
        roots.append(env)
    roots.append(SYSTEM_DATASETS)
    shared = _shared_data_dir()
    if shared is not None:
        roots.append(str(shared))
    return roots


def dataset_roots() -> list[str]:
    """``DINO_DATASET_ROOTS`` split on ``os.pathsep``, else :func:`default_dataset_roots`."""
    raw = os.environ.get("DINO_DATASET_ROOTS", "").strip()
    if not raw:
        return default_dataset_roots()
    return [p for p in raw.split(os.pathsep) if p.strip()]
