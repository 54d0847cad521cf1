"""The stem of a timm ResNet resized for small images (``model.stem_stride``).

timm's ResNets reduce an image by 4 before the first stage (a stride-2 convolution stem and a
stride-2 max-pool), which suits 224 px ImageNet crops: a 28 px Fashion-MNIST image then enters
stage 1 at 7×7 and leaves the last stage at 1×1. The self-supervised libraries train 32 px
data on the "CIFAR variant" instead (SimCLR, Chen et al. 2020, App. B.9: the first 7×7
stride-2 convolution replaced by a 3×3 stride-1 one and the max-pool removed). Here:

- stride 4: the architecture as timm builds it;
- stride 2: the max-pool removed (the first stage runs at half the input side);
- stride 1: the max-pool removed and the first convolution made stride 1 — a 7×7 single-conv
  stem (resnet18/50) becomes 3×3 as in SimCLR; a deep 3×3 stem (resnet10t, ``-d`` models) keeps
  its convolutions and loses the stride. The first stage then runs at the input side: about
  16× the stem-and-body FLOPs of stride 4 (measured in benchmarks/backbone_throughput.py).
"""

from __future__ import annotations

import torch.nn as nn

from dino_core.config import ConfigError


def _first_conv(stem: nn.Module) -> nn.Conv2d:
    for module in stem.modules():  # the stem itself first
        if isinstance(module, nn.Conv2d):
            return module
    raise ConfigError("model.stem_stride: the backbone's stem has no convolution to change")


def set_stem_stride(model: nn.Module, stride: int, arch: str) -> None:
    """Give a timm ResNet-like ``model`` (``conv1`` + ``maxpool``) a stem of total ``stride``."""
    if stride == 4:
        return
    if not (hasattr(model, "conv1") and hasattr(model, "maxpool")):
        raise ConfigError(
            f"model.stem_stride={stride} needs a ResNet-style backbone (timm resnet*, e.g. "
            f"resnet10t or resnet18); {arch!r} has no conv1/maxpool stem: remove stem_stride"
        )
    model.maxpool = nn.Identity()
    if stride == 2:
        return
    stem = model.conv1
    if not isinstance(stem, nn.Module):
        raise ConfigError(f"model.stem_stride=1: {arch!r} has no stem module to change")
    conv = _first_conv(stem)
    if conv.kernel_size == (7, 7):
        small = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None)
        if isinstance(stem, nn.Conv2d):
            model.conv1 = small
            return
        raise ConfigError(f"model.stem_stride=1: unexpected 7x7 convolution inside {arch!r}")
    conv.stride = (1, 1)
