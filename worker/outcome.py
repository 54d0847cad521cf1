"""How a trainer or evaluator outcome becomes a :class:`JobResult` and an MLflow run status."""

from __future__ import annotations

import traceback
from typing import Any

from worker.progress import finite
from worker.spec import JobResult, JobStatus

# JobResult.status -> MLflow run status. A collapse is a finished experiment with a finding
# (paper Sec. 5.3 ablations collapse on purpose); divergence and errors are failures.
MLFLOW_STATUS: dict[str, str] = {
    "SUCCEEDED": "FINISHED",
    "COLLAPSED": "FINISHED",
    "DIVERGED": "FAILED",
    "FAILED": "FAILED",
    "CANCELLED": "KILLED",
}

_TRAIN_TO_JOB: dict[str, JobStatus] = {
    "SUCCEEDED": "SUCCEEDED",
    "COLLAPSED": "COLLAPSED",
    "DIVERGED": "DIVERGED",
    "STOPPED": "CANCELLED",
}


def job_status(train_status: str) -> JobStatus:
    """Map dino_core's TrainResult.status (STOPPED only happens on cancel) to a job status."""
    try:
        return _TRAIN_TO_JOB[train_status]
    except KeyError:
        raise ValueError(
            f"trainer returned status {train_status!r}; expected one of {sorted(_TRAIN_TO_JOB)}"
        ) from None


def from_train(
    job_id: str,
    *,
    status: str,
    step: int,
    epoch: int,
    metrics: dict[str, float],
    checkpoint: str | None,
    collapse: dict[str, Any] | None,
    error: str | None,
    run_id: str | None,
    detail: dict[str, Any] | None = None,
) -> JobResult:
    """A JobResult from the fields of dino_core's TrainResult."""
    info: dict[str, Any] = {"step": step, "epoch": epoch, **(detail or {})}
    if collapse is not None:
        info["collapse"] = {k: v for k, v in collapse.items() if k != "kind"}
        info["collapse_kind"] = collapse.get("kind")
    return JobResult(
        job_id=job_id,
        status=job_status(status),
        metrics=finite(metrics),
        checkpoint_uri=checkpoint,
        mlflow_run_id=run_id,
        error=error,
        detail=info,
    )


def failed(job_id: str, err: BaseException, run_id: str | None) -> JobResult:
    """FAILED with the error text; the traceback tail goes to ``detail``."""
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return JobResult(
        job_id=job_id,
        status="FAILED",
        mlflow_run_id=run_id,
        error=f"{type(err).__name__}: {err}",
        detail={"traceback": tb[-4000:]},
    )
