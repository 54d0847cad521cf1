"""``run_job``: run one :class:`JobSpec` to a :class:`JobResult` (the orchestrator's entry point).

* ``pretrain`` with ``resources.num_workers == 1``: dino_core's trainer in this process.
* ``pretrain`` with ``num_workers > 1``: the same attempt on every rank of a Ray Train
  ``TorchTrainer`` group (:mod:`worker.distributed`), rank 0 tracking.
* ``eval_knn`` / ``eval_linear`` / ``eval_attention``: score ``spec.source_checkpoint``
  (:mod:`worker.evaluate`); ``baselines``: the k-NN baselines of ``spec.config``.

Each job has one MLflow run for all its attempts; checkpoints live in ``spec.storage_uri``
(the trainer's output directory), so a new attempt resumes from the newest one. Exceptions
become ``FAILED`` results; only ``KeyboardInterrupt``/``SystemExit`` propagate. The process
environment (telemetry off, short MLflow retries) comes from the orchestrator's Ray job
(:mod:`worker.env`).
"""

from __future__ import annotations

import os

from dino_core.config import ConfigError, DinoConfig, build_config
from worker.contracts import PRETRAIN, CancelFn, JobResult, JobSpec, ProgressFn
from worker.mlflow_run import target_for
from worker.outcome import failed
from worker.progress import Emitter


def resolve_storage(uri: str) -> str:
    """Local paths made absolute (Ray Train workers run in another directory); URIs as is."""
    if "://" in uri and not uri.startswith("file://"):
        return uri
    path = uri.removeprefix("file://")
    return os.path.abspath(os.path.expanduser(path))


def load_job_config(spec: JobSpec) -> DinoConfig:
    """Validate ``spec.config``; errors name the job and the field."""
    return build_config(spec.config, source=f"job {spec.job_id} config")


def run_job(
    spec: JobSpec,
    on_progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
) -> JobResult:
    """Run ``spec`` and report how it ended; progress events go to ``on_progress``."""
    emit = Emitter(on_progress)
    try:
        spec = spec.model_copy(update={"storage_uri": resolve_storage(spec.storage_uri)})
        config = load_job_config(spec)
        target = target_for(spec, config.config_hash(), config.data.dataset)
    except (ConfigError, ValueError, OSError) as err:
        return failed(spec.job_id, err, spec.mlflow.run_id)
    try:
        if spec.kind == PRETRAIN:
            if spec.resources.num_workers > 1:
                from worker.distributed import run_distributed

                return run_distributed(spec, config, target, emit, should_cancel)
            from worker.attempt import pretrain_attempt

            return pretrain_attempt(spec, config, target, emit, should_cancel)
        from worker.evaluate import evaluate_job

        return evaluate_job(spec, config, target, emit, should_cancel)
    except Exception as err:  # anything the attempt itself did not turn into a result
        return failed(spec.job_id, err, spec.mlflow.run_id)
