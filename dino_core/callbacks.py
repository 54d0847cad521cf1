"""The trainer's only way to talk outward: events carrying metrics.

``dino_core`` imports no tracking or scheduling service; the worker implements
:class:`Callback` (MLflow logging, progress to the database) and passes it to
:func:`dino_core.train.train`. Every hook has a no-op default, so a callback overrides only
what it needs. Hooks run on rank 0 only unless ``all_ranks`` is True.

An epoch ends in two phases, so the order of the callback list does not matter: first every
callback's :meth:`Callback.epoch_metrics` (evaluations such as the k-NN monitor return their
numbers), then every callback's :meth:`Callback.on_epoch_end` with those numbers merged into
the event's metrics (progress bar, tracker). Events are frozen and never mutated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import torch.nn as nn

    from dino_core.config import DinoConfig

# How a run ended; dino_core's own names (the worker maps them to job statuses once).
RunStatus = Literal["SUCCEEDED", "COLLAPSED", "DIVERGED", "STOPPED"]
RUN_SUCCEEDED: Final = "SUCCEEDED"
RUN_COLLAPSED: Final = "COLLAPSED"
RUN_DIVERGED: Final = "DIVERGED"
RUN_STOPPED: Final = "STOPPED"  # a callback asked to stop (cancel, early stop)


@dataclass(frozen=True)
class RunInfo:
    """What a run is, sent once at the start."""

    config: DinoConfig
    output_dir: str
    total_steps: int
    steps_per_epoch: int
    start_step: int  # > 0 when resumed from a checkpoint
    start_epoch: int
    world_size: int
    device: str


@dataclass(frozen=True)
class StepEvent:
    step: int  # global step just completed (1-based count of optimiser steps)
    epoch: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class EpochEvent:
    epoch: int  # epoch just completed (0-based)
    step: int
    metrics: dict[str, float]
    teacher: nn.Module | None = None  # the teacher backbone, for evaluations and figures
    student: nn.Module | None = None


@dataclass(frozen=True)
class CheckpointEvent:
    path: str
    step: int
    epoch: int


@dataclass(frozen=True)
class CollapseEvent:
    kind: str  # "uniform" | "one_hot"
    step: int
    evidence: dict[str, float]


@dataclass(frozen=True)
class EndEvent:
    status: RunStatus
    step: int
    epoch: int
    metrics: dict[str, float]
    checkpoint: str | None
    detail: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Base class with no-op hooks."""

    all_ranks: bool = False

    def on_train_start(self, info: RunInfo) -> None:
        return None

    def on_step_end(self, event: StepEvent) -> None:
        return None

    def epoch_metrics(self, event: EpochEvent) -> dict[str, float]:
        """Metrics this callback measures at the end of ``event``'s epoch (an evaluation);
        every callback's :meth:`on_epoch_end` then sees them in ``event.metrics``."""
        return {}

    def on_epoch_end(self, event: EpochEvent) -> None:
        """The epoch's metrics, including every callback's :meth:`epoch_metrics`."""
        return None

    def before_checkpoint(self, step: int) -> None:
        """Called right before the checkpoint of ``step`` is written: whatever a resumed run
        must not redo or lose (e.g. metrics of steps up to ``step``) is made durable here."""
        return None

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        return None

    def on_collapse(self, event: CollapseEvent) -> None:
        return None

    def on_train_end(self, event: EndEvent) -> None:
        return None

    def should_stop(self) -> bool:
        """Polled every step: True ends the run after a checkpoint (cancel, early stop)."""
        return False


class CallbackList(Callback):
    """Fan an event out to several callbacks, respecting ``all_ranks``."""

    def __init__(self, callbacks: Sequence[Callback], rank: int = 0) -> None:
        self.callbacks = [c for c in callbacks if rank == 0 or c.all_ranks]

    def on_train_start(self, info: RunInfo) -> None:
        for c in self.callbacks:
            c.on_train_start(info)

    def on_step_end(self, event: StepEvent) -> None:
        for c in self.callbacks:
            c.on_step_end(event)

    def epoch_metrics(self, event: EpochEvent) -> dict[str, float]:
        merged: dict[str, float] = {}
        for c in self.callbacks:
            for key, value in c.epoch_metrics(event).items():
                if key in merged or key in event.metrics:
                    raise ValueError(
                        f"{type(c).__name__} reports epoch metric {key!r}, which another "
                        "callback or the trainer already reported: give it another name"
                    )
                merged[key] = value
        return merged

    def on_epoch_end(self, event: EpochEvent) -> None:
        """Both phases: measure (:meth:`epoch_metrics`), then tell every callback."""
        full = replace(event, metrics={**event.metrics, **self.epoch_metrics(event)})
        for c in self.callbacks:
            c.on_epoch_end(full)

    def before_checkpoint(self, step: int) -> None:
        for c in self.callbacks:
            c.before_checkpoint(step)

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        for c in self.callbacks:
            c.on_checkpoint(event)

    def on_collapse(self, event: CollapseEvent) -> None:
        for c in self.callbacks:
            c.on_collapse(event)

    def on_train_end(self, event: EndEvent) -> None:
        for c in self.callbacks:
            c.on_train_end(event)

    def should_stop(self) -> bool:
        return any(c.should_stop() for c in self.callbacks)
