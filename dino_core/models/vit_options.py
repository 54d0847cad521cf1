"""DINOv2's ViT options (Oquab et al. 2023, arXiv 2304.07193, ``ssl_default_config.yaml``).

- Register tokens through timm's ``reg_tokens`` (Darcet et al. 2023, "Vision Transformers Need
  Registers", arXiv 2309.16588, use 4). timm gives them learned position embeddings; added to
  a learned token they only re-parametrise a learned constant, so they act as DINOv2's
  position-free registers. They count in ``num_prefix_tokens``, so attention maps skip them.
- LayerScale (Touvron et al. 2021, CaiT) through timm's ``init_values`` (DINOv2 1e-5).
- Uniform drop path (DINOv2 ``drop_path_uniform: true``): every block drops residual paths
  at ``drop_path_rate`` instead of timm's rule rising linearly from 0 at the first block.

None of them is on by default (DINO v1), and then nothing here changes the timm model.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn
from timm.layers import DropPath
from timm.models.vision_transformer import VisionTransformer

from dino_core.config import ConfigError, ModelConfig


def vit_options(cfg: ModelConfig) -> dict[str, Any]:
    """timm keyword arguments of the options that are on (none for DINO v1)."""
    out: dict[str, Any] = {}
    if cfg.num_registers:
        out["reg_tokens"] = cfg.num_registers
    if cfg.layerscale is not None:
        out["init_values"] = cfg.layerscale
    return out


def uses_vit_options(cfg: ModelConfig) -> bool:
    return bool(vit_options(cfg)) or cfg.drop_path_uniform


def not_a_vision_transformer(cfg: ModelConfig, err: Exception) -> Exception:
    """The error of building ``cfg.arch``: a config error if a ViT option was refused."""
    if not uses_vit_options(cfg):
        return err
    return ConfigError(
        f"model.arch={cfg.arch!r} is not a timm VisionTransformer ({err}): "
        "model.num_registers, model.layerscale and model.drop_path_uniform need one; use "
        "vit_custom or e.g. vit_small_patch16_224, or remove those options"
    )


def finish_vit(model: nn.Module, cfg: ModelConfig) -> None:
    """Apply what timm's constructor cannot: uniform drop path."""
    if not uses_vit_options(cfg):
        return
    if not isinstance(model, VisionTransformer):
        raise not_a_vision_transformer(cfg, TypeError(f"got {type(model).__name__}"))
    if cfg.drop_path_uniform:
        rate = cfg.drop_path_rate
        for block in model.blocks:
            for name in ("drop_path1", "drop_path2"):
                setattr(block, name, DropPath(rate) if rate > 0 else nn.Identity())
