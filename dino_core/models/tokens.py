"""All output tokens of a timm ViT, with masked patches replaced by a mask token (iBOT).

iBOT (Zhou et al. 2022) and DINOv2 (Oquab et al. 2023, arXiv 2304.07193) replace a masked
patch's embedding by a learned mask token before the position embedding is added; this runs
the timm VisionTransformer's ``forward_features`` steps with that substitution in between.
With no mask it is ``forward_features`` itself.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn as nn


def vit_tokens(
    vit: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised tokens ``[B, prefix + N, D]`` (CLS, registers, then the patches row-major);
    where ``masks`` ``[B, N]`` is set the patch embedding is ``mask_token`` ``[1, D]``."""
    m: Any = vit
    if masks is None:
        return cast(torch.Tensor, m.forward_features(images))
    if mask_token is None:
        raise ValueError("masks given without a mask token")
    x = m.patch_embed(images)  # [B, h, w, D] with dynamic_img_size, else [B, N, D]
    x = torch.where(masks.reshape(*x.shape[:-1], 1), mask_token.to(x.dtype), x)
    x = m._pos_embed(x)  # timm 1.x: prefix tokens, position embedding, dropout
    x = m.patch_drop(x)
    x = m.norm_pre(x)
    x = m.blocks(x)
    return cast(torch.Tensor, m.norm(x))
