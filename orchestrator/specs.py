"""From a job row to what Ray runs: the JobSpec and the job actor's options."""

from __future__ import annotations

from typing import Any

from orchestrator.models import Job
from worker.contracts import HEAD_NODE, PRETRAIN, JobSpec, MlflowTarget, Resources

ACTOR_CONCURRENCY = 4  # poll, cancel and spare threads next to the job's own thread


def build_spec(
    job: Job, tracking_uri: str, parent_run_id: str | None, data_roots: list[str] | None = None
) -> JobSpec:
    """The worker's contract: same storage URI and MLflow run across attempts; data read
    only under ``data_roots`` (the roots the api checked at submit, checked again there)."""
    return JobSpec(
        job_id=job.id,
        kind=job.kind,
        config=job.config,
        resources=Resources.model_validate(job.resources),
        storage_uri=job.storage_uri,
        mlflow=MlflowTarget(
            tracking_uri=tracking_uri,
            experiment_name=job.mlflow_experiment,
            parent_run_id=parent_run_id,
            run_id=job.mlflow_run_id,
        ),
        attempt=job.attempt,
        grid_id=job.grid_id,
        source_checkpoint=job.source_checkpoint,
        eval_options=job.eval_options,
        tags={str(k): str(v) for k, v in job.tags.items()},
        until_epoch=job.until_epoch if job.kind == PRETRAIN else None,
        data_roots=None if data_roots is None else list(data_roots),
    )


def actor_options(res: Resources, name: str, namespace: str) -> dict[str, Any]:
    """Detached, never restarted by Ray, placed by the job's resources.

    A single-worker job runs inside the actor, which holds its CPUs/GPUs/custom resources; a
    multi-worker job's actor only drives Ray Train, whose workers hold the resources.
    """
    opts: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "max_restarts": 0,
        "max_concurrency": ACTOR_CONCURRENCY,
        "get_if_exists": True,
    }
    if res.num_workers == 1:
        opts.update(num_cpus=res.num_cpus, num_gpus=res.num_gpus)
        if res.custom:
            opts["resources"] = dict(res.custom)
    else:  # on the head node, like Ray Train's controller it starts: a lost worker node
        opts.update(num_cpus=0, resources=dict(HEAD_NODE))  # never takes the driver along
    return opts
