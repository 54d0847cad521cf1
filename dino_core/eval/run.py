"""Checkpoint-level evaluations, as the paper scores DINO, each beside its baselines.

``run_knn_eval``, ``run_linear_eval`` and ``run_attention_eval`` load the teacher (or student)
backbone of a checkpoint, evaluate it and the same architecture at random init (plus raw
pixels for k-NN and the linear probe), write ``<out_dir>/<kind>.json`` (and figures) and
return the same JSON-able dict: ``results[model]`` per model, ``metrics`` flat floats for
trackers, ``files`` the paths written. ``dino eval`` is a thin layer over these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from dino_core.config import ConfigError, DinoConfig, build_config
from dino_core.data import eval_batches
from dino_core.eval.attention import cls_attention_maps, no_attention_reason, patch_size_of
from dino_core.eval.baselines import baseline_models
from dino_core.eval.features import default_last_blocks, eval_mode, resolve_device
from dino_core.eval.figures import display_images, save_attention_figure, transform_stats
from dino_core.eval.linear import LinearProbeConfig
from dino_core.eval.metric_names import TRAINED, knn_metric, model_suffix
from dino_core.eval.suite import (
    EvalData,
    attention_mask_report,
    knn_report,
    linear_report,
    load_eval_data,
)
from dino_core.models import load_backbone


@dataclass(frozen=True)
class DataOverrides:
    """Evaluate on other data than the checkpoint was trained on (None = keep its config)."""

    dataset: str | None = None
    root: str | None = None
    split: str | None = None  # memory / probe-training split
    eval_split: str | None = None  # query / test split
    limit: int | None = None  # first N images of each split

    def apply(self, cfg: DinoConfig) -> DinoConfig:
        data = {k: v for k, v in vars(self).items() if v is not None}
        if not data:
            return cfg
        return build_config(cfg.to_dict(), {f"data.{k}": v for k, v in data.items()}, "eval")


def default_out_dir(checkpoint: str, which: str) -> Path:
    """``<run dir>/eval/<checkpoint stem>-<which>`` for local checkpoints in ``checkpoints/``,
    ``<checkpoint dir>/eval/...`` for other local files, ``./eval/...`` for remote URIs."""
    name = f"{Path(checkpoint).stem}-{which}"
    if "://" in checkpoint and not checkpoint.startswith("file://"):
        return Path("eval") / name
    parent = Path(checkpoint.removeprefix("file://")).resolve().parent
    run_dir = parent.parent if parent.name == "checkpoints" else parent
    return run_dir / "eval" / name


def _prepare(
    checkpoint: str, which: str, data: DataOverrides | None, need_train: bool
) -> tuple[nn.Module, DinoConfig, EvalData]:
    model, cfg = load_backbone(checkpoint, which)
    try:
        cfg = (data or DataOverrides()).apply(cfg)
    except ConfigError as err:
        raise ConfigError(f"data options for checkpoint {checkpoint!r}: {err}") from None
    return model, cfg, load_eval_data(cfg, need_train=need_train)


def report_header(
    kind: str,
    checkpoint: str | None,
    which: str | None,
    cfg: DinoConfig,
    data: EvalData,
    device: str,
) -> dict[str, Any]:
    """The fields every report starts with: what was scored, on which data, where."""
    return {
        "kind": kind,
        "checkpoint": checkpoint,
        "which": which,
        "arch": cfg.model.arch,
        "dataset": cfg.data.dataset,
        "train_split": cfg.data.split if data.train is not None else None,
        "test_split": cfg.data.eval_split,
        "n_train": len(data.train) if data.train is not None else 0,
        "n_test": len(data.test),
        "num_classes": data.num_classes,
        "device": device,
    }


def write_report(
    result: dict[str, Any], out_dir: Path, kind: str, started: float
) -> dict[str, Any]:
    """``<out_dir>/<kind>.json`` with the elapsed time; returns ``result`` naming the file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{kind}.json"
    result["elapsed_s"] = round(time.perf_counter() - started, 3)
    result.setdefault("files", {})["json"] = str(path)
    path.write_text(json.dumps(result, indent=2, sort_keys=False))
    return result


def _models(trained: nn.Module, cfg: DinoConfig, baselines: bool, raw: bool) -> dict[str, Any]:
    models: dict[str, nn.Module] = {TRAINED: trained}
    if baselines:
        models.update(baseline_models(cfg, include_raw_pixels=raw))
    return models


def knn_metrics(
    report: dict[str, Any], ks: Sequence[int], name: str, seed: int | None = None
) -> dict[str, float]:
    """The flat top-1/top-5 metrics of one model's :func:`knn_report` at each k."""
    return {
        knn_metric(acc, k, name, seed): float(report[f"k={k}"][acc])
        for k in ks
        for acc in ("top1", "top5")
    }


def run_knn_eval(
    checkpoint: str,
    *,
    which: str = "teacher",
    data: DataOverrides | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    ks: Sequence[int] | None = None,
    temperature: float | None = None,
    batch_size: int = 256,
    baselines: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Weighted k-NN (paper Sec. 4.1; ``ks``/``temperature`` default to the checkpoint's
    ``eval.knn_k``/``eval.knn_temperature``) for the trained model and the baselines."""
    started = time.perf_counter()
    model, cfg, ev = _prepare(checkpoint, which, data, need_train=True)
    dev = resolve_device(device)
    ks = list(ks) if ks else [cfg.eval.knn_k]
    t = temperature if temperature is not None else cfg.eval.knn_temperature
    result = report_header("knn", checkpoint, which, cfg, ev, str(dev))
    result["settings"] = {"ks": ks, "temperature": t}
    result["results"], metrics = {}, {}
    for name, m in _models(model, cfg, baselines, raw=True).items():
        rep = knn_report(
            m, ev, ks=ks, temperature=t, batch_size=batch_size, device=dev,
            progress=progress, name=name,
        )  # fmt: skip
        result["results"][name] = rep
        metrics.update(knn_metrics(rep, ks, name))
    result["metrics"] = metrics
    out = Path(out_dir) if out_dir is not None else default_out_dir(checkpoint, which)
    return write_report(result, out, "knn", started)


def run_linear_eval(
    checkpoint: str,
    *,
    which: str = "teacher",
    data: DataOverrides | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    n_last_blocks: int | None = None,
    avgpool_patchtokens: bool = False,
    epochs: int = 100,
    lr: float = 0.001,
    probe_batch_size: int = 256,
    seed: int | None = None,
    batch_size: int = 256,
    baselines: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Linear probe on frozen features (paper Sec. 4.1): ``n_last_blocks`` CLS tokens
    (default: 4 for ViTs, the paper's ViT-S choice), optionally with pooled patch tokens."""
    started = time.perf_counter()
    model, cfg, ev = _prepare(checkpoint, which, data, need_train=True)
    dev = resolve_device(device)
    n_blocks = n_last_blocks if n_last_blocks is not None else default_last_blocks(model)
    probe = LinearProbeConfig(
        epochs=epochs,
        batch_size=probe_batch_size,
        lr=lr,
        seed=cfg.train.seed if seed is None else seed,
    )
    result = report_header("linear", checkpoint, which, cfg, ev, str(dev))
    result["settings"] = {
        "n_last_blocks": n_blocks,
        "avgpool_patchtokens": avgpool_patchtokens,
        "epochs": probe.epochs,
        "lr": probe.lr,
        "batch_size": probe.batch_size,
        "momentum": probe.momentum,
        "seed": probe.seed,
    }
    result["results"], metrics = {}, {}
    for name, m in _models(model, cfg, baselines, raw=True).items():
        raw = name == "raw_pixels"
        rep = linear_report(
            m,
            ev,
            probe=probe,
            n_last_blocks=1 if raw else n_blocks,
            avgpool_patchtokens=False if raw else avgpool_patchtokens,
            batch_size=batch_size,
            device=dev,
            progress=progress,
            name=name,
        )
        result["results"][name] = rep
        for key in ("best_top1", "final_top1", "final_top5"):
            metrics[f"linear_{key}{model_suffix(name)}"] = float(rep[key])  # type: ignore[arg-type]
    result["metrics"] = metrics
    out = Path(out_dir) if out_dir is not None else default_out_dir(checkpoint, which)
    return write_report(result, out, "linear", started)


def run_attention_eval(
    checkpoint: str,
    *,
    which: str = "teacher",
    data: DataOverrides | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    threshold: float | None = None,
    num_images: int = 8,
    batch_size: int = 64,
    baselines: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Attention figures of the first ``num_images`` test images (paper Figs. 1, 3) and, on
    data with object masks (``synthetic``, ``mnist``, ``fashion_mnist``), the attention-mask
    IoU, per model. A ConvNet backbone has no attention: the result says so (``not_applicable``)
    and holds no figure."""
    started = time.perf_counter()
    model, cfg, ev = _prepare(checkpoint, which, data, need_train=False)
    dev = resolve_device(device)
    th = threshold if threshold is not None else cfg.eval.attention_threshold
    out = Path(out_dir) if out_dir is not None else default_out_dir(checkpoint, which)
    result = report_header("attention", checkpoint, which, cfg, ev, str(dev))
    has_masks = ev.test.masks is not None
    result["settings"] = {"threshold": th, "num_images": num_images, "has_masks": has_masks}
    metrics: dict[str, float] = {}
    files: dict[str, str] = {}
    result["results"] = {}
    if not cfg.model.is_vit:
        result["not_applicable"] = no_attention_reason(cfg.model.arch)
        result["metrics"] = metrics
        return write_report(result, out, "attention", started)
    shown = ev.test.take(slice(0, num_images))
    shown_x = next(eval_batches(shown, ev.transform, len(shown)))[0]
    for name, m in _models(model, cfg, baselines, raw=False).items():
        m.to(dev)
        with eval_mode(m):
            maps = cls_attention_maps(m, shown_x.to(dev)).cpu()
        fig = save_attention_figure(
            display_images(shown_x, *transform_stats(ev.transform)),
            maps,
            out / f"attention_{name}.png",
            patch_size=patch_size_of(m),
            threshold=th,
            titles=[f"#{i} label {int(y)}" for i, y in enumerate(shown.labels)],
        )
        files[f"figure_{name}"] = fig
        entry: dict[str, Any] = {"figure": fig, "mask_score": None}
        if has_masks:
            score = attention_mask_report(
                m, ev.test, ev.transform, threshold=th, batch_size=batch_size, device=dev,
                progress=progress, name=name,
            )  # fmt: skip
            entry["mask_score"] = score.to_dict()
            sfx = model_suffix(name)
            metrics[f"attn_iou_best_head{sfx}"] = score.best_head_iou
            metrics[f"attn_iou_mean_map{sfx}"] = score.mean_map_iou
            metrics[f"attn_object_share_max{sfx}"] = score.max_object_share
            metrics[f"attn_object_area{sfx}"] = score.object_area
            for bg, part in score.by_background.items():
                metrics[f"attn_iou_best_head_{bg}{sfx}"] = float(part["best_head_iou"])  # type: ignore[arg-type]
        result["results"][name] = entry
    result["metrics"] = metrics
    result["files"] = files
    return write_report(result, out, "attention", started)
