"""Evaluations during training, as trainer callbacks (rank 0 only).

- :class:`KnnMonitor`: every ``eval.knn_every_epochs`` epochs, the weighted k-NN (paper
  Sec. 4.1, ``eval.knn_k``, ``eval.knn_temperature``) of the teacher backbone.
- :class:`AttentionMonitor`: every ``eval.attention_every_epochs`` epochs, the attention figure
  of the first test images and, on data with object masks, the attention-mask IoU.

Both return their numbers from :meth:`~dino_core.callbacks.Callback.epoch_metrics`, which
the callback list merges into the epoch event every callback (the progress bar, the
worker's tracker) then sees, and keep a ``history`` list of their own.
Data sets are loaded once, on first use: ``data.split`` cut to ``eval.knn_train_limit`` as the
memory, ``data.eval_split`` cut to ``eval.knn_test_limit`` as the queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dino_core.callbacks import Callback, EpochEvent, RunInfo
from dino_core.config import DinoConfig
from dino_core.data import build_eval_transform, eval_batches, load_dataset
from dino_core.eval.attention import cls_attention_maps, patch_size_of
from dino_core.eval.features import eval_mode, model_device
from dino_core.eval.figures import display_images, save_attention_figure, transform_stats
from dino_core.eval.suite import EvalData, attention_mask_report, knn_report

FIGURE_IMAGES = 8


def monitor_data(cfg: DinoConfig, *, need_train: bool = True) -> EvalData:
    """The monitors' data: splits cut to ``eval.knn_train_limit`` / ``eval.knn_test_limit``
    (falling back to ``data.limit``)."""
    test_cfg = cfg.data.model_copy(update={"limit": cfg.eval.knn_test_limit or cfg.data.limit})
    test = load_dataset(test_cfg, cfg.data.eval_split)
    train = None
    if need_train:
        limit = cfg.eval.knn_train_limit or cfg.data.limit
        train = load_dataset(cfg.data.model_copy(update={"limit": limit}), cfg.data.split)
    transform = build_eval_transform(train if train is not None else test, cfg)
    n_cls = max(test.num_classes, train.num_classes if train is not None else 0)
    return EvalData(train=train, test=test, transform=transform, num_classes=n_cls)


def _due(every: int, epoch: int) -> bool:
    return every > 0 and (epoch + 1) % every == 0


class KnnMonitor(Callback):
    """Adds ``knn_top1_k<k>`` / ``knn_top5_k<k>`` (percent, teacher; the names
    :func:`dino_core.eval.run.run_knn_eval` uses) to the metrics of due epochs."""

    def __init__(self, cfg: DinoConfig, *, batch_size: int = 256) -> None:
        self.cfg = cfg
        self.batch_size = batch_size
        self.data: EvalData | None = None
        self.history: list[dict[str, float | int]] = []

    def epoch_metrics(self, event: EpochEvent) -> dict[str, float]:
        if event.teacher is None or not _due(self.cfg.eval.knn_every_epochs, event.epoch):
            return {}
        if self.data is None:
            self.data = monitor_data(self.cfg)
        k = self.cfg.eval.knn_k
        rep = knn_report(
            event.teacher,
            self.data,
            ks=[k],
            temperature=self.cfg.eval.knn_temperature,
            batch_size=self.batch_size,
            name="teacher",
        )[f"k={k}"]
        metrics = {f"knn_top1_k{k}": float(rep["top1"]), f"knn_top5_k{k}": float(rep["top5"])}
        self.history.append({"epoch": event.epoch, "step": event.step, **metrics})
        return metrics


class AttentionMonitor(Callback):
    """Writes ``<output_dir>/attention/epoch-<NNNN>.png`` (local run directories) and adds
    ``attn_iou_best_head`` / ``attn_iou_mean_map`` on data with object masks."""

    def __init__(self, cfg: DinoConfig, *, batch_size: int = 64) -> None:
        self.cfg = cfg
        self.batch_size = batch_size
        self.data: EvalData | None = None
        self.figure_dir: Path | None = None
        self.history: list[dict[str, Any]] = []

    def on_train_start(self, info: RunInfo) -> None:
        remote = "://" in info.output_dir and not info.output_dir.startswith("file://")
        if not remote:
            self.figure_dir = Path(info.output_dir.removeprefix("file://")) / "attention"

    def epoch_metrics(self, event: EpochEvent) -> dict[str, float]:
        if event.teacher is None or not _due(self.cfg.eval.attention_every_epochs, event.epoch):
            return {}
        if self.data is None:
            self.data = monitor_data(self.cfg, need_train=False)
        th = self.cfg.eval.attention_threshold
        record: dict[str, Any] = {"epoch": event.epoch, "step": event.step}
        metrics: dict[str, float] = {}
        if self.figure_dir is not None:
            shown = self.data.test.take(slice(0, FIGURE_IMAGES))
            x = next(eval_batches(shown, self.data.transform, len(shown)))[0]
            dev = model_device(event.teacher)
            with eval_mode(event.teacher):
                maps = cls_attention_maps(event.teacher, x.to(dev)).cpu()
            record["figure"] = save_attention_figure(
                display_images(x, *transform_stats(self.data.transform)),
                maps,
                self.figure_dir / f"epoch-{event.epoch:04d}.png",
                patch_size=patch_size_of(event.teacher),
                threshold=th,
            )
        if self.data.test.masks is not None:
            score = attention_mask_report(
                event.teacher, self.data.test, self.data.transform, threshold=th,
                batch_size=self.batch_size, name="teacher",
            )  # fmt: skip
            metrics = {
                "attn_iou_best_head": score.best_head_iou,
                "attn_iou_mean_map": score.mean_map_iou,
                "attn_object_share_max": score.max_object_share,
            }
            record.update(metrics)
        self.history.append(record)
        return metrics
