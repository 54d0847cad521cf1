"""2 Ray Train workers (gloo, CPU) vs 1 process with the same global batch: the same loss curve,
and one MLflow run logged once (rank 0 only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from mlflow import MlflowClient

from dino_core.metrics_file import read_metrics
from tests.worker.helpers import tiny_config_dict
from worker.contracts import JobSpec, MlflowTarget, Resources, event_to_json
from worker.mlflow_run import TAG_JOB
from worker.run import run_job

# DDP all-reduces (means) the per-rank gradients of half batches, so the update equals the
# full-batch one up to float32 summation order; measured max relative loss difference here
# is ~1e-7 over 8 steps. The tolerance leaves room for reassociation on other CPUs.
LOSS_RTOL = 1e-4


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_two_workers_match_one_and_log_once(
    local_ray: None, sqlite_uri: str, tmp_path: Path
) -> None:
    cfg = tiny_config_dict(log_every_steps=1)
    target = MlflowTarget(tracking_uri=sqlite_uri, experiment_name="ddp")
    single = run_job(
        JobSpec(job_id="ddp-1", config=cfg, storage_uri=str(tmp_path / "one"), mlflow=target)
    )
    assert single.status == "SUCCEEDED", single.error
    events: list[dict[str, Any]] = []
    spec = JobSpec(
        job_id="ddp-2",
        config=cfg,
        storage_uri=str(tmp_path / "two"),
        mlflow=target,
        resources=Resources(num_workers=2, num_cpus=1),
    )
    double = run_job(spec, on_progress=lambda e: events.append(event_to_json(e)))
    assert double.status == "SUCCEEDED", double.error

    one = [r["loss"] for r in read_metrics(str(tmp_path / "one"))]
    two = [r["loss"] for r in read_metrics(str(tmp_path / "two"))]
    assert len(one) == len(two) == 8
    assert two == pytest.approx(one, rel=LOSS_RTOL)
    assert double.metrics["loss"] == pytest.approx(single.metrics["loss"], rel=LOSS_RTOL)

    # progress came back through the channel: started first, one progress per step
    assert events[0]["event"] == "started"
    assert events[0]["mlflow_run_id"] == double.mlflow_run_id
    assert [e["step"] for e in events if e["event"] == "progress"] == list(range(1, 9))

    client = MlflowClient(sqlite_uri)
    exp = client.get_experiment_by_name("ddp")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_JOB}` = 'ddp-2'")
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, 9))  # once per step, not per rank
    by_step = {m.step: m.value for m in history}
    assert [by_step[s] for s in range(1, 9)] == pytest.approx(two, rel=1e-6)
    assert runs[0].info.status == "FINISHED"
