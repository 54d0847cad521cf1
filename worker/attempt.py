"""One pretraining attempt in this process: single-process, or one rank of a Ray Train group.

Rank 0 owns the tracking session, the MLflow tracker and the progress reporter; other ranks
train with no callbacks (dino_core calls callbacks on rank 0 only and all-reduces the stop
flag). The job's storage location is the trainer's ``output_dir``, so dino_core's resume
from the newest checkpoint there is the job's resume.
"""

from __future__ import annotations

from dino_core.config import DinoConfig
from dino_core.data.roots import confined_to
from dino_core.train import train
from worker.contracts import (
    CANCELLED,
    MLFLOW_KILLED,
    MLFLOW_STATUS,
    RETRIED_FAILURES,
    CancelFn,
    FailureKind,
    JobResult,
    JobSpec,
    ProgressFn,
    Started,
    Warned,
)
from worker.epoch_eval import epoch_monitors
from worker.mlflow_run import RunTarget
from worker.outcome import failed, from_train
from worker.progress import ProgressReporter
from worker.rung_stop import RungStop, paused
from worker.tracker import MlflowTracker
from worker.tracking_session import TrackingSession

OPEN_WAIT_S = 30.0  # wait this long for the MLflow run before training starts regardless
CLOSE_WAIT_S = 120.0


def open_session(spec: JobSpec, target: RunTarget, emit: ProgressFn) -> TrackingSession:
    """Start the job's tracking session; ``started`` is emitted once the run exists."""

    def started(run_id: str) -> None:
        emit(Started(mlflow_run_id=run_id, attempt=spec.attempt))

    def warning(message: str) -> None:
        emit(Warned(message=message))

    session = TrackingSession(target, on_warning=warning, on_open=started).start()
    session.wait_open(OPEN_WAIT_S)
    return session


def finish_session(session: TrackingSession, result: JobResult) -> None:
    """Record how the attempt ended on the run, then mark it terminated."""
    session.log_text(result.model_dump_json(indent=2), "result.json")
    if result.error:
        session.log_text(result.error + "\n" + str(result.detail.get("traceback", "")), "error.txt")
    session.set_tags({"dino.status": result.status})
    session.close(MLFLOW_STATUS[result.status], timeout=CLOSE_WAIT_S)


def pretrain_attempt(
    spec: JobSpec,
    config: DinoConfig,
    target: RunTarget | None,
    emit: ProgressFn,
    should_cancel: CancelFn | None,
    *,
    in_group: bool = False,
) -> JobResult:
    """Train ``config`` into ``spec.storage_uri``; ``target`` None = a non-zero rank. Data
    is read only under ``spec.data_roots`` (checked again when it is opened).

    ``in_group`` (rank 0 of a Ray Train group): an error another try could get past
    (:data:`RETRIED_FAILURES`) is raised with the run left open, for Ray Train to restore
    the group; any other ends the run with its FAILED result."""
    if target is None:
        with confined_to(spec.data_roots):
            res = train(config, spec.storage_uri, ())
        return from_train(
            spec.job_id,
            status=res.status,
            step=res.step,
            epoch=res.epoch,
            metrics=res.metrics,
            checkpoint=res.checkpoint,
            collapse=res.collapse,
            error=res.error,
            run_id=None,
        )
    session = open_session(spec, target, emit)
    every = config.train.log_every_steps
    monitors, image_hooks = epoch_monitors(config)
    tracker = MlflowTracker(session, log_every=every, epoch_hooks=image_hooks)
    progress = ProgressReporter(emit, should_cancel, log_every=every)
    rung = RungStop(spec.until_epoch) if spec.until_epoch is not None else None
    try:
        with confined_to(spec.data_roots):
            extra = [rung] if rung is not None else []
            res = train(config, spec.storage_uri, [*monitors, tracker, progress, *extra])
        result = from_train(
            spec.job_id,
            status=res.status,
            step=res.step,
            epoch=res.epoch,
            metrics=res.metrics,
            checkpoint=res.checkpoint,
            collapse=res.collapse,
            error=res.error,
            run_id=session.run_id,
            detail=res.detail,
        )
        if rung is not None and rung.reached and not progress.cancelled:
            result = paused(result, rung)
    except Exception as err:
        after: FailureKind = "runtime" if progress.steps_run else "code"
        result = failed(spec.job_id, err, session.run_id, otherwise=after)
        if in_group and result.failure in RETRIED_FAILURES:
            # a lost rank: Ray Train restores the group from the checkpoint, whose rank 0
            # continues this run; what this rank logged reaches it first
            session.flush(CLOSE_WAIT_S)
            raise
    except BaseException:
        session.set_tags({"dino.status": CANCELLED})
        session.close(MLFLOW_KILLED, timeout=10.0)
        raise
    finish_session(session, result)
    return result.model_copy(update={"mlflow_run_id": session.run_id})
