"""Backbones from timm, built so global and local crops share one model.

ViTs are built with ``dynamic_img_size=True`` (position embeddings interpolated per input
size, as the official code does for 96 px local crops) and ``num_classes=0`` so ``forward``
returns the CLS feature. ``vit_custom`` builds a timm VisionTransformer of any size (e.g. the
MNIST report's 12 layers, d=192, 4 heads, patch 4), optionally with a convolutional stem
(:mod:`dino_core.models.conv_stem`) and fixed sin-cos position embeddings
(:mod:`dino_core.models.pos_embed`). No weights are downloaded: DINO trains
from scratch. DINOv2's ViT options (registers, LayerScale, uniform drop path):
:mod:`dino_core.models.vit_options`.
"""

from __future__ import annotations

from typing import Any, cast

import timm
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from dino_core.config import ConfigError, ModelConfig
from dino_core.models.center_tap import use_center_taps
from dino_core.models.conv_stem import conv_stem_embed_layer
from dino_core.models.pos_embed import use_sincos_pos_embed
from dino_core.models.stem import set_stem_stride
from dino_core.models.vit_options import finish_vit, not_a_vision_transformer, vit_options

KNOWN_TIMM_ARCHS = (
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_small_patch8_224",
    "vit_base_patch8_224",
    "resnet10t",
    "resnet18",
    "resnet50",
)


def build_backbone(cfg: ModelConfig, img_size: int) -> tuple[nn.Module, int]:
    """Return ``(backbone, feature_dim)``; ``backbone(x)`` gives ``[B, feature_dim]``.

    ``img_size`` is the global crop size; ViTs accept other sizes (local crops) at run time.
    """
    model = _custom_vit(cfg, img_size) if cfg.arch == "vit_custom" else _timm(cfg, img_size)
    if cfg.is_vit:
        finish_vit(model, cfg)
        if cfg.pos_embed == "sincos":
            use_sincos_pos_embed(model)
    else:
        if cfg.stem_stride is not None:
            set_stem_stride(model, cfg.stem_stride, cfg.arch)
        use_center_taps(model)  # exact; 1.4x / 1.8x on 28 / 14 px crops (models/center_tap.py)
    dim = int(cast(int, model.num_features))
    return model, dim


def _custom_vit(cfg: ModelConfig, img_size: int) -> nn.Module:
    return VisionTransformer(
        img_size=img_size,
        patch_size=cfg.patch_size,
        in_chans=cfg.in_chans,
        num_classes=0,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        qkv_bias=True,
        drop_path_rate=cfg.drop_path_rate,
        dynamic_img_size=True,
        **vit_options(cfg),
        **conv_stem_embed_layer(cfg.conv_stem),
    )


def _timm(cfg: ModelConfig, img_size: int) -> nn.Module:
    if not timm.is_model(cfg.arch):
        raise ConfigError(
            f"model.arch={cfg.arch!r} is not a timm model; use 'vit_custom' or one of "
            f"{', '.join(KNOWN_TIMM_ARCHS)}"
        )
    kwargs: dict[str, Any] = {
        "pretrained": False,
        "num_classes": 0,
        "in_chans": cfg.in_chans,
        "drop_path_rate": cfg.drop_path_rate,
    }
    if cfg.is_vit:
        kwargs.update(img_size=img_size, dynamic_img_size=True, **vit_options(cfg))
    try:
        return cast(nn.Module, timm.create_model(cfg.arch, **kwargs))
    except TypeError as err:
        raise not_a_vision_transformer(cfg, err) from None


def is_vit(model: nn.Module) -> bool:
    return isinstance(model, VisionTransformer)
