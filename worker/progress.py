"""Status signals for the orchestrator: typed events (``worker.contracts.events``) through
``on_progress``. Cancellation is the other direction:
``should_cancel`` is polled (at most every ``cancel_poll_s``) and stops the trainer after a
checkpoint. A failing ``on_progress`` or ``should_cancel`` is logged, never raised into
training.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping

from dino_core.callbacks import Callback, CheckpointEvent, CollapseEvent, RunInfo, StepEvent
from worker.contracts import (
    CancelFn,
    CheckpointSaved,
    Collapsed,
    Progress,
    ProgressFn,
    Warned,
    WorkerEvent,
)

log = logging.getLogger(__name__)
CANCEL_POLL_S = 0.5


def finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """Only the finite values as plain floats (NaN/inf are not valid JSON)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        f = float(v)
        if math.isfinite(f):
            out[k] = f
    return out


def last_step(info: RunInfo) -> int:
    """The step the run will end at: the schedule's total or ``train.max_steps``."""
    max_steps = info.config.train.max_steps
    return min(info.total_steps, max_steps) if max_steps else info.total_steps


class Emitter:
    """Thread-safe, exception-proof wrapper around ``on_progress``."""

    def __init__(self, on_progress: ProgressFn | None) -> None:
        self._fn = on_progress
        self._lock = threading.Lock()

    def __call__(self, event: WorkerEvent) -> None:
        if self._fn is None:
            return
        try:
            with self._lock:
                self._fn(event)
        except Exception:
            log.exception("on_progress failed for event %s", event.event)

    def warning(self, message: str) -> None:
        self(Warned(message=message))


class ProgressReporter(Callback):
    """Forward trainer events to ``emit`` and relay cancellation to the trainer."""

    def __init__(
        self,
        emit: ProgressFn,
        should_cancel: CancelFn | None = None,
        *,
        log_every: int,
        cancel_poll_s: float = CANCEL_POLL_S,
    ) -> None:
        self.emit = emit
        self._should_cancel = should_cancel
        self.log_every = max(1, log_every)
        self.cancel_poll_s = cancel_poll_s
        self.cancelled = False
        self.total_steps = 0
        self.steps_run = 0  # steps this attempt trained (a failure after one is retried)
        self._last_poll = -math.inf

    def on_train_start(self, info: RunInfo) -> None:
        self.total_steps = last_step(info)

    def on_step_end(self, event: StepEvent) -> None:
        self.steps_run += 1
        if event.step % self.log_every and event.step != self.total_steps:
            return
        self.emit(
            Progress(
                step=event.step,
                epoch=event.epoch,
                total_steps=self.total_steps,
                metrics=finite(event.metrics),
            )
        )

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        self.emit(CheckpointSaved(uri=event.path, step=event.step))

    def on_collapse(self, event: CollapseEvent) -> None:
        self.emit(Collapsed(kind=event.kind, step=event.step, evidence=finite(event.evidence)))

    def should_stop(self) -> bool:
        if self.cancelled:
            return True
        if self._should_cancel is None:
            return False
        now = time.monotonic()
        if now - self._last_poll < self.cancel_poll_s:
            return False
        self._last_poll = now
        try:
            self.cancelled = bool(self._should_cancel())
        except Exception:
            log.exception("should_cancel failed; treating as not cancelled")
        return self.cancelled
