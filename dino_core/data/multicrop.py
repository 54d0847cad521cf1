"""Per-image multi-crop augmentation with torchvision.transforms.v2 (paper Sec. 3.1, App. A;
the official ``DataAugmentationDINO``).

Every view: RandomResizedCrop (bicubic, antialiased) -> horizontal flip -> colour jitter
(p 0.8, random op order) -> grayscale (p 0.2) -> Gaussian blur -> [solarise, global 2
only] -> float in [0,1] -> channel adaptation -> normalise. Blur p is 1.0 / 0.1 / 0.5 for
global 1 / global 2 / locals (official code; BYOL's asymmetric blur); solarise p 0.2.

Blur kernel: the official code blurs PIL images with radius sigma ~ U(0.1, 2.0) and no
kernel size; on tensors we use an odd kernel of about 10% of the crop side, at least 3
(:func:`blur_kernel_size`: 23 for 224 px, 11 for 96 px, 3 for 28 px and below). For
small crops this truncates the Gaussian at +-1 px, which is what "blur" can mean there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from dino_core.config import CropsConfig
from dino_core.data.base import adapt_channels, adapt_stats

SOLARIZE_THRESHOLD = 128  # PIL ImageOps.solarize default, used by the official code


def blur_kernel_size(crop_size: int) -> int:
    """Odd Gaussian kernel side of about 10% of ``crop_size``, at least 3."""
    return max(3, round(0.1 * crop_size) | 1)


@dataclass(frozen=True)
class ViewSpec:
    """One view kind: its crop size/scale and its blur and solarise probabilities."""

    size: int
    scale: tuple[float, float]
    blur_p: float
    solarize_p: float


def view_specs(crops: CropsConfig) -> tuple[ViewSpec, ViewSpec, ViewSpec]:
    """(global 1, global 2, local) view specs from the config."""
    g, loc = crops.global_size, crops.local_size
    return (
        ViewSpec(g, crops.global_scale, crops.blur_p[0], 0.0),
        ViewSpec(g, crops.global_scale, crops.blur_p[1], crops.solarize_p),
        ViewSpec(loc, crops.local_scale, crops.blur_p[2], 0.0),
    )


def view_order(crops: CropsConfig) -> list[int]:
    """Spec index of each output view: ``[0, 1, 2, 2, ...]`` (globals first)."""
    return [0, 1] + [2] * crops.local_number


def _jitter(crops: CropsConfig) -> v2.Transform | None:
    b, c, s, h = crops.color_jitter
    if crops.color_jitter_p == 0 or (b, c, s, h) == (0, 0, 0, 0):
        return None
    return v2.RandomApply([v2.ColorJitter(b, c, s, h)], p=crops.color_jitter_p)


class PixelNoise(torch.nn.Module):
    """``crops.noise_sigma``: add N(0, sigma^2) per pixel (one draw shared by the channels, as
    the batched path draws it) to a float [C,H,W] image in [0,1], then clip to [0,1]."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn((1, *x.shape[-2:]), dtype=x.dtype, device=x.device)
        return (x + self.sigma * noise).clamp_(0.0, 1.0)


class AdaptChannels(torch.nn.Module):
    """:func:`adapt_channels` as a picklable transform step."""

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.in_chans = in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adapt_channels(x, self.in_chans)


def build_view(
    spec: ViewSpec,
    crops: CropsConfig,
    mean: Sequence[float],
    std: Sequence[float],
    in_chans: int,
) -> v2.Compose:
    """The torchvision pipeline of one view (uint8 CHW in, normalised float out)."""
    steps: list[Callable[..., torch.Tensor]] = [
        v2.RandomResizedCrop(
            spec.size,
            scale=spec.scale,
            interpolation=v2.InterpolationMode.BICUBIC,
            antialias=True,
        ),
        v2.RandomHorizontalFlip(crops.flip_p),
    ]
    jitter = _jitter(crops)
    if jitter is not None:
        steps.append(jitter)
    if crops.grayscale_p > 0:
        steps.append(v2.RandomGrayscale(crops.grayscale_p))
    if spec.blur_p > 0:
        k = blur_kernel_size(spec.size)
        blur = v2.GaussianBlur(k, sigma=crops.blur_sigma)
        steps.append(blur if spec.blur_p >= 1 else v2.RandomApply([blur], p=spec.blur_p))
    if spec.solarize_p > 0:
        steps.append(v2.RandomSolarize(SOLARIZE_THRESHOLD, p=spec.solarize_p))
    out_mean, out_std = adapt_stats(mean, std, in_chans)
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if crops.noise_sigma > 0:
        steps.append(PixelNoise(crops.noise_sigma))
    steps += [
        AdaptChannels(in_chans),
        v2.Normalize(list(out_mean), list(out_std)),
    ]
    return v2.Compose(steps)


class MultiCropTransform:
    """uint8 ``[C,H,W]`` (native channels) -> ``[global1, global2, *locals]`` float views
    with ``in_chans`` channels. Randomness comes from the global torch RNG; the train loader
    seeds it per sample (see :func:`dino_core.data.seeding.call_seeded`)."""

    def __init__(
        self, crops: CropsConfig, mean: Sequence[float], std: Sequence[float], in_chans: int
    ) -> None:
        if len(mean) != len(std):
            raise ValueError("mean and std need one value per native channel")
        self.crops = crops
        self.in_chans = in_chans
        specs = view_specs(crops)
        self.specs = specs
        self.global1, self.global2, self.local = (
            build_view(s, crops, mean, std, in_chans) for s in specs
        )

    @property
    def num_crops(self) -> int:
        return 2 + self.crops.local_number

    def __call__(self, img: torch.Tensor) -> list[torch.Tensor]:
        if img.dim() != 3 or img.dtype != torch.uint8:
            raise ValueError(
                f"MultiCropTransform expects a uint8 [C,H,W] image, got "
                f"{img.dtype} {tuple(img.shape)}"
            )
        views = [self.global1(img), self.global2(img)]
        views += [self.local(img) for _ in range(self.crops.local_number)]
        return views
