"""Epoch-end evaluations during pretraining: dino_core's monitors plus their MLflow images.

:class:`dino_core.eval.monitor.KnnMonitor` (``eval.knn_every_epochs``: weighted k-NN of the
teacher, paper Sec. 4.1) and :class:`~dino_core.eval.monitor.AttentionMonitor`
(``eval.attention_every_epochs``: last-block CLS attention figure, paper Sec. 4.2 / Fig. 3,
and the mask IoU on synthetic data) return their numbers as epoch metrics, which the
callback list merges into the epoch event the tracker logs (wherever it is listed). The
attention figure is also logged as the MLflow image ``attention`` with ``step=epoch`` so
the UI shows it evolve; for remote storage the figures go to a local temporary directory
first.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from dino_core.callbacks import Callback, EndEvent, EpochEvent, RunInfo
from dino_core.config import DinoConfig
from dino_core.eval.monitor import AttentionMonitor, KnnMonitor
from worker.tracker import EpochHook, EpochOutputs

IMAGE_KEY = "attention"


class AttentionFigures(AttentionMonitor):
    """The attention monitor, always drawing figures (a temp dir for remote storage)."""

    def __init__(self, cfg: DinoConfig) -> None:
        super().__init__(cfg)
        self._tmp: str | None = None

    def on_train_start(self, info: RunInfo) -> None:
        super().on_train_start(info)
        if self.figure_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="dino-attention-")
            self.figure_dir = Path(self._tmp)

    def on_train_end(self, event: EndEvent) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def image_of(self, event: EpochEvent) -> EpochOutputs:
        """Epoch hook for the tracker: this epoch's figure as an RGB array, if one was drawn."""
        if not self.history or self.history[-1].get("epoch") != event.epoch:
            return EpochOutputs()
        figure = self.history[-1].get("figure")
        if not figure:
            return EpochOutputs()
        with Image.open(figure) as img:
            return EpochOutputs(images={IMAGE_KEY: np.asarray(img.convert("RGB"))})


def epoch_monitors(cfg: DinoConfig) -> tuple[list[Callback], list[EpochHook]]:
    """Monitor callbacks and the tracker's image hooks."""
    callbacks: list[Callback] = []
    hooks: list[EpochHook] = []
    if cfg.eval.knn_every_epochs:
        callbacks.append(KnnMonitor(cfg))
    if cfg.eval.attention_every_epochs:
        attention = AttentionFigures(cfg)
        callbacks.append(attention)
        hooks.append(attention.image_of)
    return callbacks, hooks
