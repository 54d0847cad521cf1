"""How a trainer or evaluator outcome becomes a :class:`JobResult`."""

from __future__ import annotations

import traceback
from typing import Any

from dino_core.callbacks import (
    RUN_COLLAPSED,
    RUN_DIVERGED,
    RUN_STOPPED,
    RUN_SUCCEEDED,
    RunStatus,
)
from worker.contracts import (
    CANCELLED,
    COLLAPSED,
    DIVERGED,
    FAILED,
    SUCCEEDED,
    EndStatus,
    FailureKind,
    JobResult,
)
from worker.failure import failure_kind
from worker.progress import finite

# dino_core's run end -> the job's end (the trainer stops only when the job is cancelled).
JOB_STATUS_OF_RUN: dict[str, EndStatus] = {
    RUN_SUCCEEDED: SUCCEEDED,
    RUN_COLLAPSED: COLLAPSED,
    RUN_DIVERGED: DIVERGED,
    RUN_STOPPED: CANCELLED,
}


def job_status(run_status: str) -> EndStatus:
    """The job status of dino_core's ``TrainResult.status``."""
    try:
        return JOB_STATUS_OF_RUN[run_status]
    except KeyError:
        raise ValueError(
            f"trainer returned status {run_status!r}; expected one of {sorted(JOB_STATUS_OF_RUN)}"
        ) from None


def from_train(
    job_id: str,
    *,
    status: RunStatus,
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


def failed(
    job_id: str, err: BaseException, run_id: str | None, *, otherwise: FailureKind = "code"
) -> JobResult:
    """FAILED with the error text and its :func:`failure_kind` (``otherwise``: the kind of an
    error its type does not decide); the traceback tail goes to ``detail``."""
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return JobResult(
        job_id=job_id,
        status=FAILED,
        mlflow_run_id=run_id,
        error=f"{type(err).__name__}: {err}",
        failure=failure_kind(err, otherwise=otherwise),
        detail={"traceback": tb[-4000:]},
    )
