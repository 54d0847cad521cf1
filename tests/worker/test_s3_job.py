"""A pretraining job on an S3-compatible object store end to end: moto's S3 server on
127.0.0.1 holds the job's storage (checkpoints, config) and the MLflow server's artifacts
(``--artifacts-destination s3://...``). The job is SIGKILLed mid-run, the next attempt resumes
from the newest checkpoint on S3 into the same run, old checkpoints are pruned, and the
artifacts are in MLflow and in the bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from dino_core.checkpoint import list_checkpoints, load_checkpoint
from dino_core.storage import filesystem
from tests.s3server import S3Server, s3_server
from tests.worker.helpers import mlflow_server, tiny_config_dict
from tests.worker.killed_job import assert_one_gapless_run, kill_mid_run
from worker.contracts import JobSpec, MlflowTarget
from worker.run import run_job

__all__ = ["s3_server"]


@pytest.fixture(scope="module")
def s3_mlflow(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ``mlflow server`` whose artifact store is the S3 bucket."""
    root = tmp_path_factory.mktemp("mlflow_s3")
    with mlflow_server(root, artifacts_destination=s3_server.url("mlartifacts")) as url:
        yield url


def _keys(url: str) -> list[str]:
    fs, path = filesystem(url)
    return sorted(str(k).removeprefix(path + "/") for k in fs.find(path))


def test_job_on_s3_resumes_after_sigkill_prunes_and_logs_artifacts(
    s3_server: S3Server, s3_mlflow: str, tmp_path: Path
) -> None:
    storage = s3_server.url("jobs", "s3-job")
    cfg = tiny_config_dict(
        epochs=6, log_every_steps=1, checkpoint_every_steps=3, keep_checkpoints=2
    )
    spec = JobSpec(
        job_id="s3-job",
        config=cfg,
        storage_uri=storage,
        mlflow=MlflowTarget(tracking_uri=s3_mlflow, experiment_name="s3-job"),
    )
    killed_at, run_id = kill_mid_run(spec, tmp_path, at_step=8)
    assert killed_at < 24
    left = list_checkpoints(storage)
    assert left, "the killed attempt wrote no checkpoint to S3"
    for path in left:  # whatever the kill interrupted, every listed checkpoint is whole
        load_checkpoint(path)

    second = run_job(spec.model_copy(update={"attempt": 2}))
    assert second.status == "SUCCEEDED", second.error
    assert second.mlflow_run_id == run_id
    final = f"{storage}/checkpoints/checkpoint-00000024.pt"
    assert second.checkpoint_uri == final
    # checkpoints at steps 3, 4, 6, 8, 9, ... 24 (every 3 steps and each epoch's end), 2 kept
    assert _keys(storage) == [
        "checkpoints/checkpoint-00000021.pt",
        "checkpoints/checkpoint-00000024.pt",
        "config.yaml",
    ]
    resumed = load_checkpoint(final)
    assert resumed["step"] == 24
    client = MlflowClient(s3_mlflow)
    assert_one_gapless_run(client, "s3-job", "s3-job", run_id, 24)

    listed = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "result.json", "checkpoints"} <= listed
    run = client.get_run(run_id)
    stored = _keys(s3_server.url("mlartifacts"))
    prefix = f"{run.info.experiment_id}/{run_id}/artifacts/"
    assert f"{prefix}checkpoints/checkpoint-00000024.pt" in stored
    assert f"{prefix}result.json" in stored
    local = client.download_artifacts(run_id, "checkpoints/checkpoint-00000024.pt", str(tmp_path))
    fs, path = filesystem(final)
    assert Path(local).read_bytes() == fs.cat_file(path)

    # an evaluation job of that checkpoint keeps its report on S3 too, and in its MLflow run
    evaluation = run_job(
        JobSpec(
            job_id="s3-eval",
            kind="eval_knn",
            config=cfg,
            storage_uri=s3_server.url("jobs", "s3-eval"),
            source_checkpoint=final,
            eval_options={"baselines": False},
            mlflow=MlflowTarget(tracking_uri=s3_mlflow, experiment_name="s3-job"),
        )
    )
    assert evaluation.status == "SUCCEEDED", evaluation.error
    assert "eval_knn/knn.json" in _keys(s3_server.url("jobs", "s3-eval", "eval"))
    evals = [a.path for a in client.list_artifacts(evaluation.mlflow_run_id or "", "eval")]
    assert "eval/knn.json" in evals
