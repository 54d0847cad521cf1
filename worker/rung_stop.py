"""Training to a rung of the grid's early stopping: stop at the end of ``until_epoch``.

:class:`RungStop` asks the trainer to stop on the last step of epoch ``until_epoch`` (the
trainer then checkpoints, runs the epoch-end evaluations, e.g. the epoch k-NN, and returns
STOPPED), and keeps that epoch's metrics. The attempt then ends PAUSED with them
(:func:`paused`), so the orchestrator can rank the grid's combinations at the rung; a promoted
job's next attempt resumes from the checkpoint (never restarts).
"""

from __future__ import annotations

from dino_core.callbacks import Callback, EpochEvent, RunInfo, StepEvent
from worker.contracts import PAUSED, JobResult
from worker.progress import finite


class RungStop(Callback):
    """Stops the run at the end of epoch ``until_epoch`` (1-based count of epochs)."""

    def __init__(self, until_epoch: int) -> None:
        self.until_epoch = until_epoch
        self._stop_step = 0
        self._done = 0  # optimiser steps completed so far
        self.reached = False
        self.at_rung: dict[str, float] = {}

    def on_train_start(self, info: RunInfo) -> None:
        self._stop_step = self.until_epoch * info.steps_per_epoch
        self._done = info.start_step

    def on_step_end(self, event: StepEvent) -> None:
        self._done = event.step

    def should_stop(self) -> bool:
        """True while the step being taken is the last one of epoch ``until_epoch``."""
        return self._stop_step > 0 and self._done + 1 >= self._stop_step

    def on_epoch_end(self, event: EpochEvent) -> None:
        if event.epoch + 1 == self.until_epoch:
            self.reached = True
            self.at_rung = finite(event.metrics)


def paused(result: JobResult, rung: RungStop) -> JobResult:
    """``result`` (the trainer stopped) as PAUSED at the rung, with the rung epoch's metrics
    (``epoch_loss``, ``knn_top1_k<k>``, …) merged over the last step's."""
    return result.model_copy(
        update={
            "status": PAUSED,
            "metrics": {**result.metrics, **rung.at_rung},
            "detail": {**result.detail, "until_epoch": rung.until_epoch},
        }
    )
