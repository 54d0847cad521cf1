"""Preparing an MLflow backend store before jobs share it."""

from __future__ import annotations


def prepare_tracking_store(tracking_uri: str) -> None:
    """Create the tables of an embedded sqlite MLflow store now: jobs starting together on
    a fresh store would otherwise race through MLflow's own migrations. Other stores (a
    tracking server, PostgreSQL behind one) are left to their operator."""
    if not tracking_uri.startswith("sqlite:"):
        return
    from worker.env import apply_worker_env

    apply_worker_env()  # telemetry off before mlflow is imported
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).search_experiments(max_results=1)
