"""MlflowTracker + TrackingSession against a real sqlite MLflow store, with synthetic events."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import yaml
from mlflow import MlflowClient

from dino_core.callbacks import (
    CheckpointEvent,
    CollapseEvent,
    EndEvent,
    EpochEvent,
    RunInfo,
    StepEvent,
)
from dino_core.config import build_config
from tests.worker.helpers import tiny_config_dict
from worker.deployment import default_artifact_root
from worker.mlflow_run import TAG_JOB, RunTarget
from worker.tracker import EpochOutputs, MlflowTracker
from worker.tracking_session import TrackingSession


def _target(uri: str, job_id: str, **kw: object) -> RunTarget:
    return RunTarget(
        tracking_uri=uri,
        experiment_name=str(kw.pop("experiment", "tracker-tests")),
        job_id=job_id,
        run_name=job_id,
        tags={TAG_JOB: job_id, "dino.attempt": str(kw.pop("attempt", 1))},
        artifact_location=default_artifact_root(),
        **kw,  # type: ignore[arg-type]
    )


def _loss(step: int) -> float:
    return 4.0 - 0.01 * step


def _attempt(
    uri: str, job_id: str, start: int, stop: int, ckpt_every: int, attempt: int
) -> TrackingSession:
    """Replay a trainer attempt from ``start`` to ``stop`` (log every 5, 10 steps/epoch)."""
    cfg = build_config(tiny_config_dict(log_every_steps=5))
    session = TrackingSession(_target(uri, job_id, attempt=attempt)).start()

    def attention(ev: EpochEvent) -> EpochOutputs:
        img = np.full((8, 8, 3), 10 * ev.epoch, dtype=np.uint8)
        return EpochOutputs({"knn_top1": 50.0 + ev.epoch}, {"attention/heads": img})

    tracker = MlflowTracker(session, log_every=5, epoch_hooks=[attention])
    tracker.on_train_start(RunInfo(cfg, "/tmp/x", 60, 10, start, start // 10, 1, "cpu"))
    for step in range(start + 1, stop + 1):
        tracker.on_step_end(StepEvent(step, (step - 1) // 10, {"loss": _loss(step), "lr": 1e-3}))
        if step % 10 == 0:
            tracker.on_epoch_end(EpochEvent(step // 10 - 1, step, {"epoch_loss": _loss(step)}))
        if step % ckpt_every == 0:  # the trainer's order: flush, write, announce
            tracker.before_checkpoint(step)
            tracker.on_checkpoint(CheckpointEvent(f"/tmp/ckpt-{step}", step, step // 10))
    return session


def test_params_metrics_images_and_artifacts_land_in_one_run(sqlite_uri: str) -> None:
    job = f"job-{uuid.uuid4().hex[:8]}"
    session = _attempt(sqlite_uri, job, 0, 23, ckpt_every=10, attempt=1)
    cfg = build_config(tiny_config_dict(log_every_steps=5))
    tracker = MlflowTracker(session, log_every=5)
    tracker.on_collapse(CollapseEvent("uniform", 23, {"teacher_entropy": 4.15, "ln_k": 4.16}))
    tracker.on_train_end(EndEvent("SUCCEEDED", 23, 2, {"loss": _loss(23)}, None))
    assert session.close("FINISHED", timeout=60)
    client = MlflowClient(sqlite_uri)
    run = client.get_run(session.run_id or "")
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_JOB] == job
    assert run.data.params == {k: str(v) for k, v in cfg.flat().items()}
    loss = client.get_metric_history(run.info.run_id, "loss")
    # every 5th step plus the final step 23 (logged by on_train_end off the interval)
    assert [m.step for m in sorted(loss, key=lambda m: m.step)] == [5, 10, 15, 20, 23]
    assert all(abs(m.value - _loss(m.step)) < 1e-12 for m in loss)
    knn = client.get_metric_history(run.info.run_id, "knn_top1")
    assert sorted((m.step, m.value) for m in knn) == [(10, 50.0), (20, 51.0)]
    assert {m.step for m in client.get_metric_history(run.info.run_id, "epoch_loss")} == {10, 20}
    assert "system/cpu_percent" in run.data.metrics
    assert run.data.metrics["collapse/teacher_entropy"] == 4.15
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    steps = sorted(p.split("+step+")[1].split("+")[0] for p in images if p.endswith(".png"))
    assert steps == ["0", "1"]  # attention images keyed by epoch
    local = Path(client.download_artifacts(run.info.run_id, "config.yaml"))
    assert yaml.safe_load(local.read_text()) == cfg.to_dict()
    assert "collapse.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_resumed_attempt_continues_the_same_run_without_gap_or_duplicate(sqlite_uri: str) -> None:
    job = f"job-{uuid.uuid4().hex[:8]}"
    # attempt 1 logs up to step 34 but its last checkpoint is step 30 (then it dies)
    first = _attempt(sqlite_uri, job, 0, 34, ckpt_every=15, attempt=1)
    assert first.flush(60)
    # attempt 2 knows no run id: it must find the run by its job tag and resume from step 30
    second = _attempt(sqlite_uri, job, 30, 60, ckpt_every=15, attempt=2)
    assert second.close("FINISHED", 60)
    first.close("FINISHED", 5)
    assert second.run_id == first.run_id
    client = MlflowClient(sqlite_uri)
    exp = client.get_experiment_by_name("tracker-tests")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_JOB}` = '{job}'")
    assert len(runs) == 1
    assert runs[0].data.tags["dino.attempt"] == "2"
    steps = [m.step for m in client.get_metric_history(first.run_id or "", "loss")]
    assert sorted(steps) == list(range(5, 61, 5))  # no gap, no duplicate
    knn_steps = [m.step for m in client.get_metric_history(first.run_id or "", "knn_top1")]
    assert sorted(knn_steps) == [10, 20, 30, 40, 50, 60]
    pngs = [
        a.path
        for a in client.list_artifacts(first.run_id or "", "images")
        if a.path.endswith("png")
    ]
    assert len(pngs) == 6  # epochs 0..5, epoch 2's image (step 30) not logged twice


def test_grid_child_run_carries_the_parent_tag(sqlite_uri: str) -> None:
    client = MlflowClient(sqlite_uri)
    exp_id = client.create_experiment(f"grid-{uuid.uuid4().hex[:6]}")
    parent = client.create_run(exp_id, run_name="grid").info.run_id
    name = client.get_experiment(exp_id).name
    session = TrackingSession(
        _target(sqlite_uri, "child-1", experiment=name, parent_run_id=parent)
    ).start()
    session.log_metrics({"loss": 1.0}, 1)
    assert session.close("FINISHED", 60)
    run = client.get_run(session.run_id or "")
    assert run.info.experiment_id == exp_id
    assert run.data.tags["mlflow.parentRunId"] == parent


def test_explicit_run_id_is_continued_and_conflicting_params_warn(sqlite_uri: str) -> None:
    warnings: list[str] = []
    first = TrackingSession(_target(sqlite_uri, "explicit-1")).start()
    first.log_params({"a": 1, "b": 2})
    assert first.close("FAILED", 60)
    again = TrackingSession(
        _target(sqlite_uri, "explicit-1", run_id=first.run_id), on_warning=warnings.append
    ).start()
    again.log_params({"a": 1, "b": 3, "c": 4})
    assert again.close("FINISHED", 60)
    run = MlflowClient(sqlite_uri).get_run(first.run_id or "")
    assert run.data.params == {"a": "1", "b": "2", "c": "4"}
    assert run.info.status == "FINISHED"
    assert any("'b'" in w for w in warnings)


def test_a_rejected_operation_is_dropped_without_blocking_later_ones(
    sqlite_uri: str, tmp_path: Path
) -> None:
    warnings: list[str] = []
    session = TrackingSession(
        _target(sqlite_uri, "rejected-op"), on_warning=warnings.append
    ).start()
    session.log_metrics({"loss": 1.0}, 1)
    session.log_artifact(str(tmp_path / "deleted-before-upload.pt"), "checkpoints")
    session.log_metrics({"loss": 0.5}, 2)
    assert session.close("FINISHED", 60)  # would time out if the missing file were retried
    client = MlflowClient(sqlite_uri)
    assert [m.step for m in client.get_metric_history(session.run_id or "", "loss")] == [1, 2]
    assert any("dropped" in w and "FileNotFoundError" in w for w in warnings)
    assert client.get_run(session.run_id or "").info.status == "FINISHED"


def test_writes_are_coalesced_per_interval_and_flush_writes_at_once(sqlite_uri: str) -> None:
    """Within ``write_interval_s`` of the last write, new metrics wait in the buffer (one
    log_batch later instead of one per log step); ``flush`` writes them immediately."""
    session = TrackingSession(_target(sqlite_uri, "interval"), write_interval_s=3600).start()
    assert session.wait_open(60)
    session.log_metrics({"loss": 3.0}, 1)
    assert session.flush(60)  # the first write goes out; the interval starts now
    session.log_metrics({"loss": 2.0}, 2)
    session.log_metrics({"loss": 1.0}, 3)
    client = MlflowClient(sqlite_uri)
    run_id = session.run_id or ""
    time.sleep(1.0)  # the writer thread is idle, waiting for the interval to pass
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1]
    assert session.flush(60)
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3]
    assert session.close("FINISHED", 60)
