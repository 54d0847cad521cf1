"""The MLflow side of a training run: a dino_core :class:`Callback` on rank 0.

Maps trainer events onto a :class:`TrackingSession`: params and the config YAML at start,
step metrics and system metrics every ``log_every`` steps (with their global step), epoch
metrics and figures (k-NN, attention maps as ``log_image(key, step=epoch)``) at epoch ends,
a flush at every checkpoint (so every step up to a resumable checkpoint is in MLflow before
training goes on), the collapse evidence, and the final checkpoint as an artifact.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from fsspec.implementations.local import LocalFileSystem

from dino_core.callbacks import (
    RUN_STOPPED,
    Callback,
    CollapseEvent,
    EndEvent,
    EpochEvent,
    RunInfo,
    StepEvent,
)
from dino_core.storage import filesystem
from worker.progress import last_step
from worker.system_metrics import SystemSampler
from worker.tracking_session import TrackingSession

log = logging.getLogger(__name__)


@dataclass
class EpochOutputs:
    """What an epoch-end hook adds: scalar metrics, images by key, files to attach."""

    metrics: dict[str, float] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)  # (path, dir)


EpochHook = Callable[[EpochEvent], EpochOutputs]


class MlflowTracker(Callback):
    """Log one training attempt into the job's MLflow run (rank 0 only)."""

    def __init__(
        self,
        session: TrackingSession,
        *,
        log_every: int,
        epoch_hooks: list[EpochHook] | None = None,
        system_metrics: bool = True,
        checkpoint_flush_timeout_s: float = 30.0,
        upload_final_checkpoint: bool = True,
    ) -> None:
        self.session = session
        self.log_every = max(1, log_every)
        self.epoch_hooks = list(epoch_hooks or [])
        self._sampler = SystemSampler() if system_metrics else None
        self._flush_timeout = checkpoint_flush_timeout_s
        self._upload_final = upload_final_checkpoint
        self.total_steps = 0

    def on_train_start(self, info: RunInfo) -> None:
        self.total_steps = last_step(info)
        self.session.log_params(info.config.flat())
        self.session.log_text(info.config.to_yaml(), "config.yaml")

    def is_log_step(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.total_steps

    def on_step_end(self, event: StepEvent) -> None:
        if not self.is_log_step(event.step):
            return
        metrics = dict(event.metrics)
        metrics["epoch"] = float(event.epoch)
        if self._sampler is not None:
            metrics.update(self._sampler.sample())
        self.session.log_metrics(metrics, event.step)

    def on_epoch_end(self, event: EpochEvent) -> None:
        metrics = dict(event.metrics)  # the trainer's epoch means (epoch_loss, ...)
        for hook in self.epoch_hooks:
            try:
                out = hook(event)
            except Exception as err:  # a figure must never end the training run
                log.exception("epoch hook %s failed", getattr(hook, "__name__", hook))
                self.session.log_text(
                    f"{type(err).__name__}: {err}", f"errors/epoch_{event.epoch}.txt"
                )
                continue
            metrics.update(out.metrics)
            for key, image in out.images.items():
                self.session.log_image(key, image, step=event.epoch)
            for path, artifact_dir in out.artifacts:
                self.session.log_artifact(path, artifact_dir)
        if metrics:
            self.session.log_metrics(metrics, event.step)

    def before_checkpoint(self, step: int) -> None:
        # metrics up to ``step`` reach MLflow before the checkpoint of ``step`` exists: a
        # hard kill after the checkpoint then cannot leave a gap that the resumed attempt
        # (which starts after ``step``) would never fill
        if not self.session.flush(self._flush_timeout):
            log.warning("MLflow flush before checkpoint step %d timed out; continuing", step)

    def on_collapse(self, event: CollapseEvent) -> None:
        evidence = {f"collapse/{k}": v for k, v in event.evidence.items() if math.isfinite(v)}
        self.session.log_metrics(evidence, event.step)
        self.session.log_text(f"kind: {event.kind}\nstep: {event.step}\n", "collapse.yaml")

    def on_train_end(self, event: EndEvent) -> None:
        # the last step is logged even off the interval; steps already logged are skipped
        self.session.log_metrics(event.metrics, event.step)
        if event.status != RUN_STOPPED and event.checkpoint and self._upload_final:
            self.upload_checkpoint(event.checkpoint)

    def upload_checkpoint(self, uri: str) -> None:
        """Attach ``uri`` (local or fsspec) under ``checkpoints/`` (remote: via a temp copy)."""
        fs, path = filesystem(uri)
        name = os.path.basename(path)
        if isinstance(fs, LocalFileSystem):
            self.session.log_artifact(path, "checkpoints")
            return
        tmp = tempfile.mkdtemp(prefix="dino-ckpt-")
        local = os.path.join(tmp, name)
        fs.get(path, local)
        self.session.log_artifact(local, "checkpoints")
        self.session.flush(self._flush_timeout * 10)
        shutil.rmtree(tmp, ignore_errors=True)
