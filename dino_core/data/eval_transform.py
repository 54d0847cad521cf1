"""Deterministic evaluation preprocessing (k-NN, linear probe, attention maps).

Larger images: shorter side resized to ``global_size * 256/224`` (bicubic, antialiased)
then centre-cropped to ``global_size`` -- the standard ImageNet evaluation ratio of the
official code (resize 256, crop 224). Images already ``global_size`` square (28-32 px
data): nothing spatial. Smaller images: resized to ``global_size`` square.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torchvision.transforms.v2 import functional as TF

from dino_core.config import DinoConfig
from dino_core.data.base import ImageDataset, adapt_channels, adapt_stats

EVAL_RESIZE_RATIO = 256 / 224


class EvalTransform:
    """uint8 ``[...,C,H,W]`` -> float ``[...,in_chans,g,g]``, normalised (batches too)."""

    def __init__(
        self, size: int, mean: Sequence[float], std: Sequence[float], in_chans: int
    ) -> None:
        self.size = size
        self.in_chans = in_chans
        m, s = adapt_stats(mean, std, in_chans)
        self.mean = torch.tensor(m, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(s, dtype=torch.float32).view(-1, 1, 1)

    def spatial(self, img: torch.Tensor) -> torch.Tensor:
        """The resize / centre-crop step alone (uint8 in, uint8 out)."""
        h, w = img.shape[-2:]
        g = self.size
        if h == g and w == g:
            return img
        bicubic = TF.InterpolationMode.BICUBIC
        if min(h, w) >= g:
            short = round(g * EVAL_RESIZE_RATIO)
            img = TF.resize(img, [short], interpolation=bicubic, antialias=True)
            return TF.center_crop(img, [g, g])
        return TF.resize(img, [g, g], interpolation=bicubic, antialias=True)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8:
            raise ValueError(f"EvalTransform expects uint8 images, got {img.dtype}")
        x = self.spatial(img).float().div_(255.0)
        x = adapt_channels(x, self.in_chans)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


def build_eval_transform(
    dataset: ImageDataset, cfg: DinoConfig
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The evaluation transform of ``dataset`` for the model of ``cfg``."""
    return EvalTransform(cfg.crops.global_size, dataset.mean, dataset.std, cfg.model.in_chans)


def eval_batches(
    dataset: ImageDataset, transform: Callable[[torch.Tensor], torch.Tensor], batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images float [B,C,H,W], labels [B])`` over the whole data set in order; in-memory
    sets are transformed a batch at a time, lazy ones image by image."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    n = len(dataset)
    batchable = dataset.images is not None and isinstance(transform, EvalTransform)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        labels = dataset.labels[start:stop]
        if batchable:
            assert dataset.images is not None
            x = transform(dataset.images[start:stop])
        else:
            x = torch.stack([transform(dataset[i][0]) for i in range(start, stop)])
        yield x, labels
