"""Epoch-end evaluations logged during pretraining (rank 0, on the teacher backbone).

* ``eval.knn_every_epochs``: weighted k-NN on L2-normalised teacher CLS features (paper
  Sec. 4.1: k=20, T=0.07), metrics ``knn_top1_k<k>`` / ``knn_top5_k<k>`` (the names
  :func:`dino_core.eval.run.run_knn_eval` uses for the trained model).
* ``eval.attention_every_epochs``: the last block's CLS→patch attention per head on the first
  eval images (paper Sec. 4.2, Fig. 3), logged as the image ``attention`` with
  ``step=epoch`` so the MLflow UI shows it over time; on data with object masks (synthetic)
  also the 60%-mass-mask IoU ``attn_iou_mean_map`` / ``attn_iou_best_head``.

Both reuse :mod:`dino_core.eval.suite`; data sets are loaded once, on first use.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dino_core.callbacks import EpochEvent
from dino_core.config import DinoConfig
from dino_core.data import ImageDataset, eval_batches
from dino_core.eval.attention import cls_attention_maps, patch_size_of
from dino_core.eval.features import model_device
from dino_core.eval.figures import display_images, save_attention_figure
from dino_core.eval.suite import EvalData, attention_mask_report, knn_report, load_eval_data
from worker.tracker import EpochHook, EpochOutputs

ATTENTION_FIGURE_IMAGES = 4
ATTENTION_SCORE_IMAGES = 64


def _head(ds: ImageDataset, limit: int | None) -> ImageDataset:
    return ds if limit is None or limit >= len(ds) else ds.take(slice(0, limit), f"[:{limit}]")


def _due(every: int, event: EpochEvent) -> bool:
    return bool(every) and (event.epoch + 1) % every == 0 and event.teacher is not None


class KnnEveryEpochs:
    """k-NN accuracy of the teacher every ``eval.knn_every_epochs`` epochs."""

    def __init__(self, cfg: DinoConfig) -> None:
        self.cfg = cfg
        self._data: EvalData | None = None

    def __call__(self, event: EpochEvent) -> EpochOutputs:
        if not _due(self.cfg.eval.knn_every_epochs, event) or event.teacher is None:
            return EpochOutputs()
        if self._data is None:
            full = load_eval_data(self.cfg, need_train=True)
            assert full.train is not None
            self._data = EvalData(
                train=_head(full.train, self.cfg.eval.knn_train_limit),
                test=_head(full.test, self.cfg.eval.knn_test_limit),
                transform=full.transform,
                num_classes=full.num_classes,
            )
        k = self.cfg.eval.knn_k
        report = knn_report(
            event.teacher,
            self._data,
            ks=[k],
            temperature=self.cfg.eval.knn_temperature,
            device=model_device(event.teacher),
            name="teacher",
        )[f"k={k}"]
        return EpochOutputs(
            {f"knn_top1_k{k}": float(report["top1"]), f"knn_top5_k{k}": float(report["top5"])}
        )


class AttentionEveryEpochs:
    """Attention-map figure (and mask IoU where masks exist) every N epochs."""

    def __init__(self, cfg: DinoConfig) -> None:
        self.cfg = cfg
        self._data: EvalData | None = None

    def __call__(self, event: EpochEvent) -> EpochOutputs:
        if not _due(self.cfg.eval.attention_every_epochs, event) or event.teacher is None:
            return EpochOutputs()
        if self._data is None:
            self._data = load_eval_data(self.cfg, need_train=False)
        data, model = self._data, event.teacher
        threshold = self.cfg.eval.attention_threshold
        shown = _head(data.test, ATTENTION_FIGURE_IMAGES)
        x = next(eval_batches(shown, data.transform, len(shown)))[0]
        was_training = model.training
        model.eval()
        try:
            maps = cls_attention_maps(model, x.to(model_device(model))).float().cpu()
        finally:
            model.train(was_training)
        mean = getattr(data.transform, "mean", None)
        std = getattr(data.transform, "std", None)
        stats = (
            (tuple(float(v) for v in mean.flatten()), tuple(float(v) for v in std.flatten()))
            if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
            else (None, None)
        )
        with tempfile.TemporaryDirectory(prefix="dino-attn-") as tmp:
            path = save_attention_figure(
                display_images(x, *stats),
                maps,
                Path(tmp) / "attention.png",
                patch_size=patch_size_of(model),
                threshold=threshold,
                titles=[f"label {int(v)}" for v in shown.labels],
            )
            image = np.asarray(Image.open(path).convert("RGB"))
        metrics: dict[str, float] = {}
        if data.test.masks is not None:
            score = attention_mask_report(
                model,
                _head(data.test, ATTENTION_SCORE_IMAGES),
                data.transform,
                threshold=threshold,
                device=model_device(model),
                name="teacher",
            )
            metrics["attn_iou_mean_map"] = float(score.mean_map_iou)
            metrics["attn_iou_best_head"] = float(score.best_head_iou)
        return EpochOutputs(metrics, {"attention": image})


def epoch_hooks(cfg: DinoConfig) -> list[EpochHook]:
    """The epoch-end hooks the config asks for."""
    hooks: list[EpochHook] = []
    if cfg.eval.knn_every_epochs:
        hooks.append(KnnEveryEpochs(cfg))
    if cfg.eval.attention_every_epochs:
        hooks.append(AttentionEveryEpochs(cfg))
    return hooks
