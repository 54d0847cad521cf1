"""Job functions for scheduler tests: real functions that Ray runs in the job actors.

They behave like ``worker.run.run_job`` where the scheduler can tell: progress events,
checkpoints in ``spec.storage_uri`` that a later attempt resumes from, cooperative cancel,
and one "MLflow run id" kept across attempts. Behaviour comes from ``spec.tags``:
``t.steps`` (default 3), ``t.step_s`` (default 0.05), ``t.fail_attempts`` (attempts <= N
fail, as ``t.failure``: a ``FailureKind``, default unclassified), ``t.outcome`` (end
status, or ``raise``), ``t.collapse_when`` (``field=value``: that combination ends
COLLAPSED), ``t.ignore_cancel``, ``t.hold_file`` (wait until this file exists before
finishing), ``t.scores`` (eval jobs report :func:`score_of` their config, at the config's
``eval.knn_k``, instead of the fixed :data:`EVAL_METRICS`), ``t.knn_by`` (comma-separated
config fields: the epoch k-NN is :func:`epoch_knn` of them, reported at a rung and at the
end). ``spec.until_epoch`` is honoured as the worker does: the run ends PAUSED at the end of
that epoch (``t.steps`` split evenly over the config's ``train.epochs``). A ``baselines`` job
reports raw pixels and random init at each seed it was given (:func:`baseline_of`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from dino_core.config import flatten
from dino_core.eval.metric_names import RANDOM_INIT, RAW_PIXELS, knn_metric
from worker.contracts import (
    CancelFn,
    CheckpointSaved,
    Collapsed,
    JobResult,
    JobSpec,
    Progress,
    ProgressFn,
    Started,
)

EVAL_METRICS = {
    "eval_knn": {"knn_top1": 0.5},
    "eval_attention": {"attention_iou": 0.25},
    "eval_linear": {"linear_top1": 0.6},
}


RAW_PIXELS_SCORE = 42.0


def score_of(config: dict[str, Any], kind: str) -> float:
    """A made-up score in [50, 90) that differs between configs (so between seeds)."""
    digest = hashlib.sha256(json.dumps([kind, config], sort_keys=True).encode()).digest()
    return 50.0 + int.from_bytes(digest[:4], "big") % 4000 / 100.0


def baseline_of(seed: int) -> float:
    """The made-up k-NN top-1 of random init at ``seed``."""
    return 10.0 + 1.5 * seed


def _eval_metrics(spec: JobSpec) -> dict[str, float]:
    k = int(spec.config.get("eval", {}).get("knn_k", 20))
    if spec.kind == "baselines":
        seeds = spec.eval_options.get("seeds") or [spec.config["train"]["seed"]]
        out = {knn_metric("top1", k, RANDOM_INIT, s): baseline_of(s) for s in seeds}
        return {**out, knn_metric("top1", k, RAW_PIXELS): RAW_PIXELS_SCORE}
    if spec.tags.get("t.scores") != "1":
        return EVAL_METRICS[spec.kind]
    key = {"eval_knn": knn_metric("top1", k), "eval_linear": "linear_final_top1"}
    return {key.get(spec.kind, "attn_iou_mean_map"): score_of(spec.config, spec.kind)}


def epoch_knn(config: dict[str, Any], fields: str, epoch: int) -> float:
    """The made-up epoch k-NN: 100 - 100 x the sum of ``fields``' values, + the epoch, +
    0.01 x the seed (so seeds differ, and low values of the fields win)."""
    flat = flatten(config)
    total = sum(float(flat[f]) for f in fields.split(",") if f)
    return 100.0 - 100.0 * total + epoch + 0.01 * int(flat.get("train.seed", 0))


def _log(store: Path, **entry: Any) -> None:
    with (store / "log.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")


def read_log(storage_uri: str) -> list[dict[str, Any]]:
    path = Path(storage_uri) / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def steps_job(
    spec: JobSpec,
    on_progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
) -> JobResult:
    emit = on_progress or (lambda _e: None)
    cancelled = should_cancel or (lambda: False)
    tags = spec.tags
    store = Path(spec.storage_uri)
    store.mkdir(parents=True, exist_ok=True)
    run_id = spec.mlflow.run_id or f"run-{spec.job_id}-a{spec.attempt}"
    (store / f"pid-a{spec.attempt}").write_text(str(os.getpid()))
    ckpt = store / "ckpt.json"
    start = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    _log(
        store,
        attempt=spec.attempt,
        event="start",
        step=start,
        pid=os.getpid(),
        run_id=run_id,
        parent=spec.mlflow.parent_run_id,
        source=spec.source_checkpoint,
    )
    emit(Started(mlflow_run_id=run_id, attempt=spec.attempt))
    if spec.kind != "pretrain":
        needs = spec.kind != "baselines"  # a baselines job scores the config, no checkpoint
        if needs and (not spec.source_checkpoint or not Path(spec.source_checkpoint).exists()):
            return JobResult(
                job_id=spec.job_id,
                status="FAILED",
                mlflow_run_id=run_id,
                error=f"no checkpoint at {spec.source_checkpoint!r}",
            )
        _log(store, attempt=spec.attempt, event="end", status="SUCCEEDED")
        return JobResult(
            job_id=spec.job_id,
            status="SUCCEEDED",
            mlflow_run_id=run_id,
            metrics=_eval_metrics(spec),
        )
    steps = int(tags.get("t.steps", "3"))
    step_s = float(tags.get("t.step_s", "0.05"))
    if spec.attempt <= int(tags.get("t.fail_attempts", "0")):
        _log(store, attempt=spec.attempt, event="end", status="FAILED")
        return JobResult(
            job_id=spec.job_id,
            status="FAILED",
            mlflow_run_id=run_id,
            error=f"planned failure of attempt {spec.attempt}",
            failure=tags.get("t.failure"),  # type: ignore[arg-type]
        )
    loss = 0.0
    per_epoch = max(1, steps // int(spec.config.get("train", {}).get("epochs", 1)))
    knn_key = knn_metric("top1", int(spec.config.get("eval", {}).get("knn_k", 20)))
    knn_by = tags.get("t.knn_by", "")
    for step in range(start + 1, steps + 1):
        if cancelled() and tags.get("t.ignore_cancel") != "1":
            _log(store, attempt=spec.attempt, event="end", status="CANCELLED")
            return JobResult(job_id=spec.job_id, status="CANCELLED", mlflow_run_id=run_id)
        time.sleep(step_s)
        loss = 10.0 / step
        tmp = store / "ckpt.tmp"
        tmp.write_text(json.dumps({"step": step}))
        tmp.replace(ckpt)
        emit(Progress(step=step, epoch=0, total_steps=steps, metrics={"loss": loss}))
        emit(CheckpointSaved(uri=str(ckpt), step=step))
        if spec.until_epoch is not None and step == spec.until_epoch * per_epoch < steps:
            _log(store, attempt=spec.attempt, event="end", status="PAUSED", step=step)
            rung = {"loss": loss, "epoch_loss": loss}
            if knn_by:
                rung[knn_key] = epoch_knn(spec.config, knn_by, spec.until_epoch)
            return JobResult(
                job_id=spec.job_id,
                status="PAUSED",
                mlflow_run_id=run_id,
                metrics=rung,
                checkpoint_uri=str(ckpt),
            )
    hold = tags.get("t.hold_file")
    while hold and not Path(hold).exists():
        if cancelled() and tags.get("t.ignore_cancel") != "1":
            _log(store, attempt=spec.attempt, event="end", status="CANCELLED")
            return JobResult(job_id=spec.job_id, status="CANCELLED", mlflow_run_id=run_id)
        time.sleep(0.05)
    outcome = tags.get("t.outcome", "SUCCEEDED")
    when = tags.get("t.collapse_when")  # "section.field=value": this combination collapses
    if when:
        key, _, value = when.partition("=")
        if str(flatten(spec.config).get(key)) == value:
            outcome = "COLLAPSED"
    if outcome == "raise":
        raise RuntimeError(f"planned exception in job {spec.job_id}")
    if outcome == "COLLAPSED":
        emit(Collapsed(kind="uniform", step=steps, evidence={"loss": loss}))
    _log(store, attempt=spec.attempt, event="end", status=outcome)
    final = {"loss": loss, "steps": float(steps)}
    if knn_by:
        final[knn_key] = epoch_knn(spec.config, knn_by, steps // per_epoch)
    if tags.get("t.scores") == "1":
        final["loss"] = score_of(spec.config, "loss") / 10
        final["teacher_entropy"] = score_of(spec.config, "teacher_entropy") / 20
    return JobResult(
        job_id=spec.job_id,
        status=outcome,
        mlflow_run_id=run_id,  # type: ignore[arg-type]
        metrics=final,
        checkpoint_uri=str(ckpt),
    )
