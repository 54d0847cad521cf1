"""Progress events, cancellation relay and result mapping (no backend needed)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dino_core.callbacks import CheckpointEvent, CollapseEvent, RunInfo, StepEvent
from dino_core.config import build_config
from tests.worker.helpers import tiny_config_dict
from worker.contracts import MLFLOW_STATUS, Progress, WorkerEvent, event_to_json
from worker.outcome import failed, from_train, job_status
from worker.progress import Emitter, ProgressReporter


def _info(max_steps: int | None = None) -> RunInfo:
    cfg = build_config(tiny_config_dict(max_steps=max_steps))
    return RunInfo(cfg, "/tmp/x", 8, 4, 0, 0, 1, "cpu")


def test_progress_every_interval_and_at_the_last_step() -> None:
    events: list[dict[str, Any]] = []
    rep = ProgressReporter(lambda e: events.append(event_to_json(e)), log_every=3)
    rep.on_train_start(_info(max_steps=7))  # max_steps ends the run before the schedule
    for step in range(1, 8):
        rep.on_step_end(StepEvent(step, 0, {"loss": 1.0 / step, "bad": math.nan}))
    assert [e["step"] for e in events] == [3, 6, 7]
    assert events[0] == {
        "event": "progress",
        "step": 3,
        "epoch": 0,
        "total_steps": 7,
        "metrics": {"loss": pytest.approx(1 / 3)},  # NaN is not JSON: left out
    }
    rep.on_checkpoint(CheckpointEvent("/j/checkpoints/checkpoint-00000007.pt", 7, 1))
    rep.on_collapse(CollapseEvent("one_hot", 7, {"teacher_entropy_max": 0.01, "x": math.inf}))
    assert events[-2] == {
        "event": "checkpoint",
        "uri": "/j/checkpoints/checkpoint-00000007.pt",
        "step": 7,
    }
    assert events[-1] == {
        "event": "collapse",
        "kind": "one_hot",
        "step": 7,
        "evidence": {"teacher_entropy_max": 0.01},
    }


def test_cancel_is_sticky_and_a_failing_check_is_not_a_cancel() -> None:
    answers = iter([False, True])
    rep = ProgressReporter(lambda e: None, lambda: next(answers), log_every=1, cancel_poll_s=0)
    assert rep.should_stop() is False
    assert rep.should_stop() is True
    assert rep.should_stop() is True  # no further call to the (exhausted) callable
    assert rep.cancelled

    def broken() -> bool:
        raise ConnectionError("database gone")

    rep2 = ProgressReporter(lambda e: None, broken, log_every=1, cancel_poll_s=0)
    assert rep2.should_stop() is False


def test_emitter_swallows_callback_errors() -> None:
    seen: list[str] = []

    def flaky(event: WorkerEvent) -> None:
        seen.append(event.event)
        raise RuntimeError("orchestrator hiccup")

    emit = Emitter(flaky)
    emit(Progress(step=1, epoch=0, total_steps=1))
    emit.warning("MLflow down")
    assert seen == ["progress", "warning"]
    Emitter(None)(Progress(step=1, epoch=0, total_steps=1))  # no callback: nothing happens


def test_statuses_map_to_job_and_mlflow_states() -> None:
    assert [job_status(s) for s in ("SUCCEEDED", "COLLAPSED", "DIVERGED", "STOPPED")] == [
        "SUCCEEDED",
        "COLLAPSED",
        "DIVERGED",
        "CANCELLED",
    ]
    with pytest.raises(ValueError, match="'PAUSED'"):
        job_status("PAUSED")
    assert MLFLOW_STATUS["CANCELLED"] == "KILLED" and MLFLOW_STATUS["DIVERGED"] == "FAILED"
    res = from_train(
        "j", status="COLLAPSED", step=12, epoch=3, metrics={"loss": 4.15, "kl": math.nan},
        checkpoint="/c.pt", collapse={"kind": "uniform", "ln_k": 4.16}, error=None, run_id="r",
    )  # fmt: skip
    assert res.status == "COLLAPSED" and res.metrics == {"loss": 4.15}
    assert res.detail == {
        "step": 12,
        "epoch": 3,
        "collapse": {"ln_k": 4.16},
        "collapse_kind": "uniform",
    }
    err = failed("j", KeyError("model.depth"), "r")
    assert err.status == "FAILED" and err.error == "KeyError: 'model.depth'"
    assert "KeyError" in err.detail["traceback"]
