"""run_job end to end: the real trainer, a real MLflow backend (sqlite store and server)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from dino_core.config import build_config
from tests.worker.helpers import tiny_config_dict
from worker.contracts import JobResult, JobSpec, MlflowTarget, event_to_json
from worker.deployment import default_tracking_uri
from worker.mlflow_run import TAG_JOB
from worker.run import run_job


def _spec(root: Path, cfg: dict[str, Any], uri: str | None, **kw: Any) -> JobSpec:
    job_id = kw.pop("job_id", f"job-{uuid.uuid4().hex[:8]}")
    return JobSpec(
        job_id=job_id,
        config=cfg,
        storage_uri=str(root / job_id),
        mlflow=MlflowTarget(tracking_uri=uri, experiment_name="run-job-tests"),
        **kw,
    )


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


@pytest.fixture(params=["sqlite", "server"])
def backend(request: pytest.FixtureRequest, sqlite_uri: str) -> str | None:
    """None = the embedded default (sqlite under DINO_HOME); else the server's URL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("server_uri"))


def test_pretrain_job_tracks_params_metrics_images_and_artifacts(
    backend: str | None, tmp_path: Path
) -> None:
    cfg = tiny_config_dict(log_every_steps=2)
    cfg["eval"] = {"knn_every_epochs": 1, "attention_every_epochs": 1}
    events: list[dict[str, Any]] = []
    spec = _spec(tmp_path, cfg, backend, grid_id="grid-7", tags={"owner": "tests"})
    result = run_job(spec, on_progress=lambda e: events.append(event_to_json(e)))
    assert result.status == "SUCCEEDED", result.error
    assert events[0] == {"event": "started", "mlflow_run_id": result.mlflow_run_id, "attempt": 1}
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == [2, 4, 6, 8]  # 64 images / 16 = 4 steps x 2 epochs
    assert all(e["total_steps"] == 8 and "loss" in e["metrics"] for e in progress)
    ckpts = [e for e in events if e["event"] == "checkpoint"]
    assert [e["step"] for e in ckpts] == [4, 8]
    assert result.checkpoint_uri == ckpts[-1]["uri"] and Path(ckpts[-1]["uri"]).is_file()

    client = MlflowClient(backend or default_tracking_uri())
    run = client.get_run(result.mlflow_run_id or "")
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags[TAG_JOB] == spec.job_id and tags["dino.grid_id"] == "grid-7"
    assert tags["dino.attempt"] == "1" and tags["owner"] == "tests"
    assert tags["dino.config_hash"] == build_config(cfg).config_hash()
    assert tags["dino.dataset"] == "synthetic" and tags["dino.status"] == "SUCCEEDED"
    assert tags["dino.code_version"]
    assert run.data.params["train.batch_size"] == "16"
    assert run.data.params["model.embed_dim"] == "32"
    for key in ("loss", "lr", "wd", "momentum", "teacher_temp", "teacher_entropy", "kl"):
        assert _steps(client, run.info.run_id, key) == [2, 4, 6, 8], key
    for key in ("center_norm", "student_entropy", "images_per_s", "system/cpu_percent"):
        assert key in run.data.metrics
    assert _steps(client, run.info.run_id, "knn_top1_k20") == [4, 8]
    assert 0.0 <= run.data.metrics["knn_top1_k20"] <= 100.0
    assert 0.0 <= run.data.metrics["attn_iou_mean_map"] <= 1.0
    pngs = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert sorted(p.split("+step+")[1].split("+")[0] for p in pngs if p.endswith(".png")) == [
        "0",
        "1",
    ]
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "result.json", "checkpoints"} <= top
    ckpt_files = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert ckpt_files == ["checkpoints/checkpoint-00000008.pt"]
    config_yaml = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    assert yaml.safe_load(config_yaml.read_text()) == build_config(cfg).to_dict()


def test_cancel_then_second_attempt_continues_one_run(sqlite_uri: str, tmp_path: Path) -> None:
    cfg = tiny_config_dict(epochs=4, log_every_steps=1, checkpoint_every_steps=2)
    first_events: list[dict[str, Any]] = []

    def cancel_after_step_3() -> bool:
        return any(e.get("step", 0) >= 3 for e in first_events if e["event"] == "progress")

    spec = _spec(tmp_path, cfg, None)
    first = run_job(
        spec,
        on_progress=lambda e: first_events.append(event_to_json(e)),
        should_cancel=cancel_after_step_3,
    )
    assert first.status == "CANCELLED", first.error
    stopped_at = int(first.detail["step"])
    assert 3 <= stopped_at < 16
    assert first.checkpoint_uri is not None and first.checkpoint_uri.endswith(
        f"checkpoint-{stopped_at:08d}.pt"
    )
    client = MlflowClient(default_tracking_uri())
    assert client.get_run(first.mlflow_run_id or "").info.status == "KILLED"

    # the orchestrator retries without knowing the run id: the job tag finds it
    second = run_job(spec.model_copy(update={"attempt": 2}))
    assert second.status == "SUCCEEDED", second.error
    assert second.mlflow_run_id == first.mlflow_run_id
    exp = client.get_experiment_by_name("run-job-tests")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_JOB}` = '{spec.job_id}'")
    assert len(runs) == 1
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["dino.attempt"] == "2"
    assert _steps(client, runs[0].info.run_id, "loss") == list(range(1, 17))


def test_collapse_is_reported_with_evidence(sqlite_uri: str, tmp_path: Path) -> None:
    # a very hot teacher is uniform from the start: entropy ~ ln K (paper Sec. 5.3)
    cfg = tiny_config_dict(collapse_patience_steps=2, log_every_steps=1)
    cfg["loss"] = {"warmup_teacher_temp": 50.0, "teacher_temp": 50.0}
    cfg["loss"]["warmup_teacher_temp_epochs"] = 0
    cfg["optim"] = {"warmup_epochs": 0}
    events: list[dict[str, Any]] = []
    result = run_job(
        _spec(tmp_path, cfg, None), on_progress=lambda e: events.append(event_to_json(e))
    )
    assert result.status == "COLLAPSED", result
    assert result.detail["collapse_kind"] == "uniform"
    collapse = [e for e in events if e["event"] == "collapse"]
    assert len(collapse) == 1 and collapse[0]["kind"] == "uniform"
    assert collapse[0]["evidence"]["teacher_entropy_min"] >= 0.98 * collapse[0]["evidence"]["ln_k"]
    run = MlflowClient(default_tracking_uri()).get_run(result.mlflow_run_id or "")
    assert run.data.tags["dino.status"] == "COLLAPSED"
    assert "collapse/teacher_entropy_min" in run.data.metrics


def test_training_error_becomes_failed_with_the_message(sqlite_uri: str, tmp_path: Path) -> None:
    cfg = tiny_config_dict(batch_size=128)  # 64 synthetic images hold no full batch of 128
    result = run_job(_spec(tmp_path, cfg, None))
    assert result.status == "FAILED"
    assert result.error is not None and "batch_size" in result.error
    client = MlflowClient(default_tracking_uri())
    run = client.get_run(result.mlflow_run_id or "")
    assert run.info.status == "FAILED"
    assert "error.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_invalid_config_fails_without_raising(sqlite_uri: str, tmp_path: Path) -> None:
    result = run_job(_spec(tmp_path, {"train": {"batch_sise": 4}}, None))
    assert result.status == "FAILED"
    assert result.error is not None and "train.batch_sise" in result.error


def test_eval_jobs_score_a_checkpoint(sqlite_uri: str, tmp_path: Path) -> None:
    cfg = tiny_config_dict(epochs=1)
    pre = run_job(_spec(tmp_path, cfg, None))
    assert pre.status == "SUCCEEDED" and pre.checkpoint_uri
    client = MlflowClient(default_tracking_uri())
    results: dict[str, JobResult] = {}
    for kind, options in (
        ("eval_knn", {"baselines": False}),
        ("eval_attention", {"num_images": 2, "baselines": False}),
        ("eval_linear", {"epochs": 2, "baselines": False}),
    ):
        spec = _spec(
            tmp_path, cfg, None, kind=kind, source_checkpoint=pre.checkpoint_uri,
            eval_options=options,
        )  # fmt: skip
        results[kind] = res = run_job(spec)
        assert res.status == "SUCCEEDED", res.error
        run = client.get_run(res.mlflow_run_id or "")
        assert run.data.tags["dino.source_checkpoint"] == pre.checkpoint_uri
        assert run.data.metrics == pytest.approx(res.metrics)
        evals = [a.path for a in client.list_artifacts(run.info.run_id, "eval")]
        assert f"eval/{kind.removeprefix('eval_')}.json" in evals
    assert 0 <= results["eval_knn"].metrics["knn_top1_k20"] <= 100
    assert 0 <= results["eval_attention"].metrics["attn_iou_mean_map"] <= 1
    assert "linear_final_top1" in results["eval_linear"].metrics
    att = client.list_artifacts(results["eval_attention"].mlflow_run_id or "", "images")
    assert any(a.path.endswith(".png") for a in att)


def test_unknown_eval_option_is_named(sqlite_uri: str, tmp_path: Path) -> None:
    spec = _spec(
        tmp_path, tiny_config_dict(), None, kind="eval_knn", source_checkpoint="/nowhere.pt",
        eval_options={"kk": 3},
    )  # fmt: skip
    result = run_job(spec)
    assert result.status == "FAILED"
    assert result.error is not None and "'kk'" in result.error


def test_until_epoch_pauses_at_the_rung_with_its_knn_and_the_next_attempt_resumes(
    sqlite_uri: str, tmp_path: Path
) -> None:
    cfg = tiny_config_dict(epochs=2, log_every_steps=1)
    cfg["eval"] = {"knn_every_epochs": 1}
    spec = _spec(tmp_path, cfg, None, until_epoch=1)
    first = run_job(spec)
    assert first.status == "PAUSED", first.error
    assert first.detail["until_epoch"] == 1 and first.detail["step"] == 4  # 64 / 16 per epoch
    assert 0.0 <= first.metrics["knn_top1_k20"] <= 100.0 and "epoch_loss" in first.metrics
    assert first.checkpoint_uri and first.checkpoint_uri.endswith("checkpoint-00000004.pt")
    client = MlflowClient(default_tracking_uri())
    run = client.get_run(first.mlflow_run_id or "")
    assert run.data.tags["dino.status"] == "PAUSED"

    events: list[dict[str, Any]] = []
    second = run_job(
        spec.model_copy(update={"attempt": 2, "until_epoch": None}),
        on_progress=lambda e: events.append(event_to_json(e)),
    )
    assert second.status == "SUCCEEDED", second.error
    assert second.mlflow_run_id == first.mlflow_run_id  # one run across the rung
    assert [e["step"] for e in events if e["event"] == "progress"] == [5, 6, 7, 8]  # resumed
    assert _steps(client, first.mlflow_run_id or "", "knn_top1_k20") == [4, 8]
