"""Find or create the one MLflow run of a job (explicit run ids, no fluent active run).

A job owns exactly one run for all its attempts: ``spec.mlflow.run_id`` when the orchestrator
already knows it, else the run tagged ``dino.job_id=<job_id>`` in the experiment, else a new
run. Grid jobs are children of the grid's parent run (``mlflow.parentRunId``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import RunTag, ViewType
from mlflow.exceptions import MlflowException

from worker.code_version import code_version
from worker.contracts import MLFLOW_RUNNING, JobSpec
from worker.deployment import default_artifact_root, default_tracking_uri

TAG_JOB = "dino.job_id"
TAG_GRID = "dino.grid_id"
TAG_ATTEMPT = "dino.attempt"
# MLflow 3's UI opens experiments of this kind in its model-training view (metric charts,
# images) rather than the GenAI traces view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


@dataclass(frozen=True)
class RunTarget:
    """Everything needed to open a job's run; plain data so it crosses Ray processes."""

    tracking_uri: str
    experiment_name: str
    job_id: str
    run_name: str
    run_id: str | None = None
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    artifact_location: str | None = None  # for an experiment this job creates


def target_for(spec: JobSpec, config_hash: str, dataset: str) -> RunTarget:
    """The run target of ``spec``: tracking URI, experiment and the tags every attempt sets."""
    version = code_version()
    tags = {
        TAG_JOB: spec.job_id,
        TAG_ATTEMPT: str(spec.attempt),
        "dino.kind": spec.kind,
        "dino.config_hash": config_hash,
        "dino.dataset": dataset,
        "dino.code_version": version,
    }
    if len(version) == 40:
        tags["mlflow.source.git.commit"] = version
    if spec.grid_id is not None:
        tags[TAG_GRID] = spec.grid_id
    if spec.source_checkpoint is not None:
        tags["dino.source_checkpoint"] = spec.source_checkpoint
    tags.update(spec.tags)
    uri = spec.mlflow.tracking_uri or default_tracking_uri()
    return RunTarget(
        tracking_uri=uri,
        experiment_name=spec.mlflow.experiment_name,
        job_id=spec.job_id,
        run_name=spec.job_id,
        run_id=spec.mlflow.run_id,
        parent_run_id=spec.mlflow.parent_run_id,
        tags=tags,
        artifact_location=default_artifact_root() if is_embedded(uri) else None,
    )


def is_embedded(tracking_uri: str) -> bool:
    """True for a store the worker opens directly (sqlite file), not an MLflow server."""
    return tracking_uri.startswith("sqlite:")


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """Id of experiment ``name``, created with ``artifact_location`` if it does not exist
    (embedded store: ``DINO_HOME/mlartifacts``; a server picks its own)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise MlflowException(
                f"MLflow experiment {name!r} is deleted: restore it in the UI or choose another "
                "spec.mlflow.experiment_name"
            )
        return str(exp.experiment_id)
    try:
        return str(
            client.create_experiment(
                name, artifact_location=artifact_location, tags=dict(EXPERIMENT_KIND)
            )
        )
    except MlflowException:
        exp = client.get_experiment_by_name(name)  # another job created it meanwhile
        if exp is None:
            raise
        return str(exp.experiment_id)


def find_job_run(client: MlflowClient, experiment_id: str, job_id: str) -> str | None:
    """The oldest live run tagged with ``job_id`` in the experiment, if any."""
    safe = job_id.replace("'", "\\'")
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_JOB}` = '{safe}'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=10,
        order_by=["attributes.start_time ASC"],
    )
    return runs[0].info.run_id if runs else None


def open_run(client: MlflowClient, target: RunTarget) -> str:
    """Continue the job's run (marking it RUNNING and updating tags) or create it once."""
    run_id = target.run_id
    if run_id is None:
        exp_id = ensure_experiment(client, target.experiment_name, target.artifact_location)
        run_id = find_job_run(client, exp_id, target.job_id)
        if run_id is None:
            initial = dict(target.tags)
            if target.parent_run_id:
                initial["mlflow.parentRunId"] = target.parent_run_id
            run = client.create_run(exp_id, tags=initial, run_name=target.run_name)
            return str(run.info.run_id)
    run = client.get_run(run_id)
    if run.info.lifecycle_stage == "deleted":
        raise MlflowException(
            f"MLflow run {run_id} of job {target.job_id} is deleted: restore it or clear "
            "spec.mlflow.run_id to start a new run"
        )
    if run.info.status != MLFLOW_RUNNING:
        client.update_run(run_id, status=MLFLOW_RUNNING)
    tags = [RunTag(k, v) for k, v in target.tags.items()]
    if target.parent_run_id and "mlflow.parentRunId" not in run.data.tags:
        tags.append(RunTag("mlflow.parentRunId", target.parent_run_id))
    client.log_batch(run_id, tags=tags)
    return str(run_id)
