"""Model-level evaluations: one backbone (or several, e.g. trained and baselines) on data sets.

These take modules and loaded data sets, so the trainer's epoch hook and the checkpoint-level
runners in :mod:`dino_core.eval.run` share them. Every result is a JSON-able dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from dino_core.config import DinoConfig
from dino_core.data import ImageDataset, build_eval_transform, eval_batches, load_dataset
from dino_core.eval.attention import PAPER_MASS_THRESHOLD, cls_attention_maps, patch_size_of
from dino_core.eval.features import eval_mode, extract_features, model_device
from dino_core.eval.knn import knn_classify
from dino_core.eval.linear import LinearProbeConfig, train_linear_probe
from dino_core.eval.mask_score import (
    ImageMaskStats,
    MaskScore,
    image_mask_stats,
    summarize_mask_stats,
)

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalData:
    """The memory (train) and query (test) sets with the eval transform of the model."""

    train: ImageDataset | None
    test: ImageDataset
    transform: Transform
    num_classes: int


def load_eval_data(cfg: DinoConfig, *, need_train: bool = True) -> EvalData:
    """``cfg.data.split`` as the memory/training set, ``cfg.data.eval_split`` as the queries
    (each cut to ``cfg.data.limit``); the transform follows the test set's statistics."""
    test = load_dataset(cfg.data, cfg.data.eval_split)
    train = load_dataset(cfg.data, cfg.data.split) if need_train else None
    transform = build_eval_transform(train if train is not None else test, cfg)
    n_cls = max(test.num_classes, train.num_classes if train is not None else 0)
    return EvalData(train=train, test=test, transform=transform, num_classes=n_cls)


def dataset_features(
    model: nn.Module,
    dataset: ImageDataset,
    transform: Transform,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    normalize: bool = True,
    n_last_blocks: int = 1,
    avgpool_patchtokens: bool = False,
    progress: bool = False,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of every image of ``dataset`` (in order)."""
    return extract_features(
        model,
        eval_batches(dataset, transform, batch_size),
        device=device,
        n_last_blocks=n_last_blocks,
        avgpool_patchtokens=avgpool_patchtokens,
        normalize=normalize,
        total_batches=math.ceil(len(dataset) / batch_size),
        progress=progress,
        desc=desc,
    )


def knn_report(
    model: nn.Module,
    data: EvalData,
    *,
    ks: Sequence[int],
    temperature: float,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
    name: str = "model",
) -> dict[str, dict[str, float | int]]:
    """``{"k=20": {"top1": …, "top5": …, …}, …}`` of the weighted k-NN (paper Sec. 4.1)."""
    if data.train is None:
        raise ValueError("k-NN needs a training (memory) set: load_eval_data(need_train=True)")
    feats = partial(
        dataset_features, model, transform=data.transform, batch_size=batch_size,
        device=device, progress=progress,
    )  # fmt: skip
    xtr, ytr = feats(data.train, desc=f"{name} train")
    xte, yte = feats(data.test, desc=f"{name} test")
    scores = knn_classify(
        xtr, ytr, xte, yte, ks=ks, temperature=temperature, num_classes=data.num_classes
    )
    return {f"k={k}": s.to_dict() for k, s in scores.items()}


def linear_report(
    model: nn.Module,
    data: EvalData,
    *,
    probe: LinearProbeConfig,
    n_last_blocks: int = 1,
    avgpool_patchtokens: bool = False,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
    name: str = "model",
) -> dict[str, object]:
    """Linear probe on frozen, unnormalised features computed once (official recipe)."""
    if data.train is None:
        raise ValueError("the linear probe needs a training set: load_eval_data(need_train=True)")
    feats = partial(
        dataset_features, model, transform=data.transform, batch_size=batch_size,
        device=device, progress=progress, normalize=False, n_last_blocks=n_last_blocks,
        avgpool_patchtokens=avgpool_patchtokens,
    )  # fmt: skip
    xtr, ytr = feats(data.train, desc=f"{name} train")
    xte, yte = feats(data.test, desc=f"{name} test")
    res = train_linear_probe(
        xtr, ytr, xte, yte, num_classes=data.num_classes, config=probe, device=xtr.device
    )
    return {"feature_dim": int(xtr.shape[1]), **res.to_dict()}


def transformed_masks(masks: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Object masks ``[N, H, W]`` through the transform's resize/crop (``spatial``), so they
    line up with the model's input pixels; a transform without ``spatial`` must keep sizes."""
    spatial = getattr(transform, "spatial", None)
    if spatial is None:
        return masks.bool()
    as_img = masks[:, None].to(torch.uint8) * 255
    return spatial(as_img)[:, 0] >= 128


@torch.no_grad()
def attention_mask_report(
    model: nn.Module,
    dataset: ImageDataset,
    transform: Transform,
    *,
    threshold: float = PAPER_MASS_THRESHOLD,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
    name: str = "model",
) -> MaskScore:
    """Mean IoU of the attention masks with the data set's object masks (synthetic, MNIST and
    Fashion-MNIST carry them)."""
    if dataset.masks is None:
        raise ValueError(
            f"data set {dataset.name!r} has no object masks: the attention-mask score needs "
            "data.dataset 'synthetic', 'mnist' or 'fashion_mnist'"
        )
    dev = torch.device(device) if device is not None else model_device(model)
    model.to(dev)
    patch = patch_size_of(model)
    parts: list[ImageMaskStats] = []
    batches = eval_batches(dataset, transform, batch_size)
    total = math.ceil(len(dataset) / batch_size)
    bar = tqdm(batches, desc=f"{name} masks", total=total, disable=not progress, unit="batch")
    try:
        with eval_mode(model):
            for i, (images, _) in enumerate(bar):
                start, stop = i * batch_size, i * batch_size + images.shape[0]
                x = images.to(dev)
                truth = transformed_masks(dataset.masks[start:stop], transform)
                if truth.shape[-2:] != x.shape[-2:]:
                    raise ValueError(
                        f"object masks are {tuple(truth.shape[-2:])} but model inputs are "
                        f"{tuple(x.shape[-2:])}: the transform must expose its resize/crop as "
                        "`spatial`"
                    )
                maps = cls_attention_maps(model, x)
                parts.append(image_mask_stats(maps, truth.to(dev), patch, threshold).cpu())
    finally:
        bar.close()
    return summarize_mask_stats(ImageMaskStats.cat(parts), dataset.backgrounds, threshold)
