"""A subprocess running run_job is SIGKILLed mid-run; the next attempt resumes from the last
checkpoint into the same MLflow run, whose metric history then has no gap and no duplicate."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from tests.worker.helpers import tiny_config_dict
from tests.worker.killed_job import assert_one_gapless_run, kill_mid_run
from worker.contracts import JobSpec, MlflowTarget
from worker.run import run_job


def test_hard_killed_attempt_resumes_into_one_gapless_run(
    dino_home: Path, sqlite_uri: str, tmp_path: Path
) -> None:
    # log every step, checkpoint every 3: the killed attempt has logged steps past its last
    # checkpoint, which the next attempt recomputes and must not log twice
    cfg = tiny_config_dict(epochs=6, log_every_steps=1, checkpoint_every_steps=3)
    spec = JobSpec(
        job_id="hard-kill",
        config=cfg,
        storage_uri=str(tmp_path / "job"),
        mlflow=MlflowTarget(tracking_uri=sqlite_uri, experiment_name="hard-kill"),
    )
    killed_at, run_id = kill_mid_run(spec, tmp_path, at_step=8)
    assert killed_at < 24  # it really was killed mid-run

    second = run_job(spec.model_copy(update={"attempt": 2}))
    assert second.status == "SUCCEEDED", second.error
    assert second.mlflow_run_id == run_id
    # 4 steps x 6 epochs, each once
    assert_one_gapless_run(MlflowClient(sqlite_uri), "hard-kill", "hard-kill", run_id, 24)
