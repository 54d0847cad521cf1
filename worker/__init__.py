"""worker: runs one JobSpec (MLflow run, checkpoints, Ray Train for DDP) on dino_core."""

from worker.env import apply_worker_env

apply_worker_env()
