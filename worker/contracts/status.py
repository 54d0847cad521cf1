"""Job kinds and the status names of jobs, attempts, grids and MLflow runs, defined once.

A job moves QUEUED -> RUNNING -> one of :data:`TERMINAL` (the transitions live in
``orchestrator/states.py``). A grid with early stopping adds PAUSED: the attempt trained to a
rung epoch and ended; the grid's rung decision then requeues the job (promoted: the next
attempt resumes from its checkpoint) or ends it STOPPED_EARLY. An attempt ends with its job's
end status, or PAUSED, LOST (its actor or node died) or ABANDONED (the orchestrator that owned
its local Ray stopped). A grid is
SUCCEEDED when every job succeeded and FINISHED when every job ended otherwise.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

EvalKind = Literal["eval_knn", "eval_attention", "eval_linear"]
# A request names a pretraining or an evaluation of a checkpoint; a grid adds its baseline
# job itself (the k-NN of random init and raw pixels, once per grid and architecture).
RequestKind = Literal["pretrain", EvalKind]
JobKind = Literal[RequestKind, "baselines"]
PRETRAIN: Final = "pretrain"
BASELINES: Final = "baselines"
EVAL_KINDS: Final[tuple[EvalKind, ...]] = get_args(EvalKind)
JOB_KINDS: Final[tuple[JobKind, ...]] = get_args(JobKind)

EndStatus = Literal["SUCCEEDED", "FAILED", "CANCELLED", "COLLAPSED", "DIVERGED"]
# How one attempt of a job function ends: an end status, or PAUSED at a rung epoch.
AttemptEnd = Literal[EndStatus, "PAUSED"]
FinalStatus = Literal[EndStatus, "STOPPED_EARLY"]  # the job ends here, nothing runs again
JobStatus = Literal["QUEUED", "RUNNING", "PAUSED", FinalStatus]
QUEUED: Final = "QUEUED"
RUNNING: Final = "RUNNING"
PAUSED: Final = "PAUSED"
STOPPED_EARLY: Final = "STOPPED_EARLY"
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"
CANCELLED: Final = "CANCELLED"
COLLAPSED: Final = "COLLAPSED"
DIVERGED: Final = "DIVERGED"
STATES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
TERMINAL: Final[frozenset[FinalStatus]] = frozenset(get_args(FinalStatus))

AttemptStatus = Literal["RUNNING", AttemptEnd, "LOST", "ABANDONED"]
LOST: Final = "LOST"
ABANDONED: Final = "ABANDONED"

# Why an attempt FAILED, as the worker classifies its error (worker/failure.py). Only a
# failure that another attempt could get past is retried (orchestrator/outcomes.py):
# ``infrastructure`` (out of memory, I/O or network error, a lost rank) and ``runtime`` (an
# error after this attempt had trained at least one step, so config, data and code were
# fine). ``config``, ``data`` and ``code`` (an error before the first step) end the job at once.
FailureKind = Literal["config", "data", "code", "runtime", "infrastructure"]
RETRIED_FAILURES: Final[frozenset[FailureKind]] = frozenset({"runtime", "infrastructure"})

GridStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FINISHED"]
GRID_FINISHED: Final = "FINISHED"
GRID_DONE: Final[frozenset[GridStatus]] = frozenset({SUCCEEDED, GRID_FINISHED})

# MLflow's run statuses (mlflow.entities.RunStatus names) that the worker and orchestrator set.
MlflowRunStatus = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
MLFLOW_RUNNING: Final = "RUNNING"
MLFLOW_FINISHED: Final = "FINISHED"
MLFLOW_FAILED: Final = "FAILED"
MLFLOW_KILLED: Final = "KILLED"
# A collapse is a finished experiment with a finding (paper Sec. 5.3 ablations collapse on
# purpose); divergence and errors are failures.
# A paused run is finished for now; the promoted job's next attempt reopens the same run.
MLFLOW_STATUS: Final[dict[AttemptEnd, MlflowRunStatus]] = {
    PAUSED: MLFLOW_FINISHED,
    SUCCEEDED: MLFLOW_FINISHED,
    COLLAPSED: MLFLOW_FINISHED,
    DIVERGED: MLFLOW_FAILED,
    FAILED: MLFLOW_FAILED,
    CANCELLED: MLFLOW_KILLED,
}
