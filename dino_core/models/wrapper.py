"""Backbone + head applied to a list of crops, one backbone pass per resolution.

Crops of equal size (the 2 globals, then the locals) are concatenated along the batch and go
through the backbone together (official ``MultiCropWrapper``); the head then runs once on all
features. Output rows follow the input order: crop 0's batch first, then crop 1's, …

With ``parts=True`` (the DINOv2 components, Oquab et al. 2023, arXiv 2304.07193) the forward
also returns the backbone CLS features of the global crops (KoLeo) and, given patch ``masks``,
the patch head's outputs at the masked patches of the global crops (iBOT), the student seeing
those patches as the learned ``mask_token``. The plain forward is unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn as nn

from dino_core.config import ConfigError, DinoConfig, HeadConfig
from dino_core.ibot import masked_rows
from dino_core.models.attention import use_attention
from dino_core.models.backbone import build_backbone, is_vit
from dino_core.models.head import DINOHead
from dino_core.models.tokens import vit_tokens


class CropOutputs(NamedTuple):
    logits: torch.Tensor  # head outputs of every crop's CLS feature, crop-major (as forward)
    features: torch.Tensor  # backbone CLS features of the global crops, crop-major
    patch_logits: torch.Tensor | None  # patch-head outputs at the masked patches, image-major


class MultiCropWrapper(nn.Module):
    """``channels_last``: the backbone's weights and each input batch in NHWC (ConvNets).
    ``mask_token`` ``[1, D]`` and ``patch_head`` (None = ``head``) serve the iBOT loss."""

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        channels_last: bool = False,
        *,
        mask_token: nn.Parameter | None = None,
        patch_head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels_last = channels_last
        if channels_last:
            backbone.to(memory_format=torch.channels_last)
        self.mask_token = mask_token
        self.patch_head = patch_head

    def _run_backbone(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self.backbone(batch)

    def _features(self, crops: list[torch.Tensor]) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        start = 0
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape[-1] == crops[start].shape[-1]:
                end += 1
            batch = torch.cat(crops[start:end]) if end - start > 1 else crops[start]
            feats.append(self._run_backbone(batch))
            start = end
        return feats

    def forward(
        self,
        crops: list[torch.Tensor] | torch.Tensor,
        masks: torch.Tensor | None = None,
        *,
        parts: bool = False,
        mask_input: bool = True,
        n_global: int = 2,
    ) -> torch.Tensor | CropOutputs:
        """Head outputs of every crop, or with ``parts`` a :class:`CropOutputs`: ``masks``
        ``[n_global x B, N]`` select the global crops' patches for the patch head and, with
        ``mask_input``, replace them by the mask token in the input (the student)."""
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        if not parts:
            return self.head(torch.cat(self._features(crops)))
        globals_ = torch.cat(crops[:n_global])
        patch_logits = None
        if masks is None:
            cls = self._run_backbone(globals_)
        else:
            vit: Any = self.backbone
            token = self.mask_token if mask_input else None
            tokens = vit_tokens(vit, globals_, masks if mask_input else None, token)
            cls = vit.forward_head(tokens)
            patches = masked_rows(tokens[:, int(vit.num_prefix_tokens) :], masks)
            patch_logits = (self.patch_head or self.head)(patches)
        logits = self.head(torch.cat([cls, *self._features(crops[n_global:])]))
        return CropOutputs(logits, cls, patch_logits)


def _head(
    h: HeadConfig, in_dim: int, out_dim: int, hidden: int, bottleneck: int, nlayers: int
) -> DINOHead:
    return DINOHead(
        in_dim,
        out_dim,
        hidden_dim=hidden,
        bottleneck_dim=bottleneck,
        nlayers=nlayers,
        use_bn=h.use_bn,
        norm_last_layer=h.norm_last_layer,
    )


def build_model(cfg: DinoConfig) -> MultiCropWrapper:
    """Student or teacher network for ``cfg`` (same architecture for both)."""
    backbone, dim = build_backbone(cfg.model, cfg.crops.global_size)
    use_attention(backbone, cfg.train.attention)
    h = cfg.head
    head = _head(h, dim, h.out_dim, h.hidden_dim, h.bottleneck_dim, h.nlayers)
    mask_token = patch_head = None
    if cfg.loss.ibot_weight > 0:
        if not is_vit(backbone):
            raise ConfigError(
                f"loss.ibot_weight={cfg.loss.ibot_weight} needs a timm VisionTransformer "
                f"backbone (patch tokens); model.arch={cfg.model.arch!r} is not one: use "
                "vit_custom or vit_small_patch16_224, or set loss.ibot_weight=0"
            )
        mask_token = nn.Parameter(torch.zeros(1, dim))  # DINOv2: zeros
        ib = cfg.ibot
        if ib.separate_head:
            patch_head = _head(
                h,
                dim,
                cfg.patch_out_dim(),
                ib.hidden_dim or h.hidden_dim,
                ib.bottleneck_dim or h.bottleneck_dim,
                ib.nlayers or h.nlayers,
            )
    channels_last = cfg.model.channels_last and not is_vit(backbone)
    return MultiCropWrapper(
        backbone, head, channels_last, mask_token=mask_token, patch_head=patch_head
    )
