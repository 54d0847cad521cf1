"""The test session is an entry point like ``python -m orchestrator``: it sets the worker's
process environment (telemetry off, short MLflow retries) before any test imports MLflow."""

from worker.env import apply_worker_env

apply_worker_env()
