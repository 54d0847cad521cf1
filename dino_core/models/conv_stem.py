"""A convolutional stem for ``vit_custom`` (``model.conv_stem``).

Xiao et al. 2021 ("Early Convolutions Help Transformers See Better", arXiv 2106.14881) replace
the ViT's patchify layer, one linear map per patch, by a few 3×3 convolutions with BatchNorm
and ReLU, and report that the ViT then trains stably over a wider range of learning rates and
converges faster. Their stem reaches the patch stride through stride-2 convolutions, which
needs a power-of-two patch size; the 28 px presets use patches of 7. Here the stem's 3×3
convolutions keep the input's resolution (stride 1, padding 1) and the ViT's own patch
projection follows them, so the patch grid, and with it the position embeddings, the
attention maps, the mask scores and the iBOT masks, is exactly that of the plain ViT for every
input size. What changes is what a token sees: local features computed over a 3×3 neighbourhood
per layer (a receptive field of ``2 × layers + 1`` pixels, across patch borders), not raw pixels.

The stem lives inside ``patch_embed``, so the optimiser treats it as the patch embedding
(``optim.patch_embed_lr_mult`` and layer-wise decay apply to it as to the patchify layer).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn as nn
from timm.layers import PatchEmbed

STEM_KERNEL = 3  # Xiao et al. 2021: 3×3 convolutions, each followed by BatchNorm and ReLU


def stem_layers(in_chans: int, channels: tuple[int, ...]) -> nn.Sequential:
    """3×3 stride-1 convolution, BatchNorm, ReLU per entry of ``channels``."""
    layers: list[nn.Module] = []
    c = in_chans
    for out in channels:
        layers += [
            nn.Conv2d(c, out, STEM_KERNEL, stride=1, padding=STEM_KERNEL // 2, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        c = out
    return nn.Sequential(*layers)


class ConvStemPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` with :func:`stem_layers` before its patch projection."""

    def __init__(self, *, stem_channels: tuple[int, ...], in_chans: int, **kwargs: Any) -> None:
        if not stem_channels:
            raise ValueError("a convolutional stem needs at least one layer of channels")
        super().__init__(in_chans=stem_channels[-1], **kwargs)
        self.stem = stem_layers(in_chans, stem_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.stem(x))


def conv_stem_embed_layer(channels: tuple[int, ...]) -> dict[str, Any]:
    """timm ``VisionTransformer`` keyword arguments for ``model.conv_stem`` (none if empty)."""
    if not channels:
        return {}
    return {"embed_layer": partial(ConvStemPatchEmbed, stem_channels=tuple(channels))}
