"""Reference points reported beside every score: what did pretraining buy?

- ``random_init``: the same architecture, untrained, its weights drawn after
  ``torch.manual_seed(train.seed)`` (the seed the run started from), evaluated the same way.
- ``raw_pixels``: the eval-transformed, normalised image itself as the feature, average-pooled
  to at most ``max_side`` pixels a side so large images stay tractable.

Both are plain ``nn.Module`` "backbones", so every evaluation treats them like the trained one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dino_core.config import DinoConfig
from dino_core.eval.metric_names import RANDOM_INIT, RAW_PIXELS
from dino_core.models import build_backbone

RAW_PIXELS_MAX_SIDE = 32


class RawPixels(nn.Module):
    """Image ``[B, C, H, W]`` to the flattened pixel vector, pooled to <= ``max_side``."""

    def __init__(self, max_side: int = RAW_PIXELS_MAX_SIDE) -> None:
        super().__init__()
        if max_side < 1:
            raise ValueError(f"max_side={max_side} must be >= 1")
        self.max_side = max_side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if max(h, w) > self.max_side:
            x = F.adaptive_avg_pool2d(x, (min(h, self.max_side), min(w, self.max_side)))
        return x.flatten(1)


def random_init_backbone(cfg: DinoConfig, seed: int | None = None) -> nn.Module:
    """``cfg``'s backbone at random init from ``seed`` (default ``train.seed``: the weights a
    run of ``cfg`` starts from); global RNG left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed if seed is None else seed)
        model, _ = build_backbone(cfg.model, cfg.crops.global_size)
    return model.eval()


def baseline_models(
    cfg: DinoConfig, *, include_raw_pixels: bool = True, raw_max_side: int = RAW_PIXELS_MAX_SIDE
) -> dict[str, nn.Module]:
    """``{"random_init": ..., "raw_pixels": ...}`` for ``cfg`` (raw pixels optional)."""
    out: dict[str, nn.Module] = {RANDOM_INIT: random_init_backbone(cfg)}
    if include_raw_pixels:
        out[RAW_PIXELS] = RawPixels(raw_max_side)
    return out
