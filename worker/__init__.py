"""worker: runs one JobSpec (MLflow run, checkpoints, Ray Train for DDP) on dino_core.

Importing it changes nothing outside it: the process environment the worker wants (telemetry
off, short MLflow client retries) is set by the entry points, see :mod:`worker.env`.
"""
