"""Process environment the worker needs before MLflow or Ray is imported.

Telemetry is off by default (this project runs on machines without outside network); a
value already in the environment wins, so an operator can still turn things on. Nothing sets
it on import: each entry point calls :func:`apply_worker_env` first (``run_orchestrator``,
``dino serve``, :func:`worker.mlflow_store.prepare_tracking_store`), and the orchestrator hands
:func:`worker_env` to Ray as its job's environment, so every actor and Ray Train worker it
starts, on any node, has it before it imports MLflow.
"""

from __future__ import annotations

import os

TELEMETRY_OFF: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    # The MLflow client's own HTTP retries block the caller; the worker retries with its
    # own back-off on a background thread instead, so keep the client's short.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def worker_env() -> dict[str, str]:
    """The variables above with the values in force here (this environment's, else ours)."""
    return {key: os.environ.get(key, value) for key, value in TELEMETRY_OFF.items()}


def apply_worker_env() -> None:
    """Set the defaults above in ``os.environ`` unless already set."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
