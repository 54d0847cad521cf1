"""Backbone + head applied to a list of crops, one backbone pass per resolution.

Crops of equal size (the 2 globals, then the locals) are concatenated along the batch and go
through the backbone together (official ``MultiCropWrapper``); the head then runs once on all
features. Output rows follow the input order: crop 0's batch first, then crop 1's, …
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dino_core.config import DinoConfig
from dino_core.models.backbone import build_backbone, is_vit
from dino_core.models.head import DINOHead


class MultiCropWrapper(nn.Module):
    """``channels_last``: the backbone's weights and each input batch in NHWC (ConvNets)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels_last = channels_last
        if channels_last:
            backbone.to(memory_format=torch.channels_last)

    def forward(self, crops: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        feats: list[torch.Tensor] = []
        start = 0
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape[-1] == crops[start].shape[-1]:
                end += 1
            batch = torch.cat(crops[start:end]) if end - start > 1 else crops[start]
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            feats.append(self.backbone(batch))
            start = end
        return self.head(torch.cat(feats))


def build_model(cfg: DinoConfig) -> MultiCropWrapper:
    """Student or teacher network for ``cfg`` (same architecture for both)."""
    backbone, dim = build_backbone(cfg.model, cfg.crops.global_size)
    h = cfg.head
    head = DINOHead(
        dim,
        h.out_dim,
        hidden_dim=h.hidden_dim,
        bottleneck_dim=h.bottleneck_dim,
        nlayers=h.nlayers,
        use_bn=h.use_bn,
        norm_last_layer=h.norm_last_layer,
    )
    return MultiCropWrapper(backbone, head, cfg.model.channels_last and not is_vit(backbone))
