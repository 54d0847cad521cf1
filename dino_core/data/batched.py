"""Batched multi-crop: the per-image pipeline's distributions, one tensor op per step.

Per-sample parameters are drawn from an explicit ``torch.Generator`` with the algorithms
torchvision uses (RandomResizedCrop's 10 tries + centre-crop fallback, ColorJitter's
random op order and factor ranges, blur sigma ~ U(sigma)), then applied to the whole batch:
crop + resize + flip as two batched matmuls with antialiased bicubic weights, colour ops
with per-sample factors, a grouped separable blur. Works on any device. Images stay float
in [0,1] throughout (the per-image path rounds to uint8 between steps; the solarise
threshold 127.5/255 is the float equivalent of ``round(255 x) >= 128``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dino_core.config import CropsConfig
from dino_core.data import batched_ops as ops
from dino_core.data.base import adapt_channels, adapt_stats
from dino_core.data.multicrop import ViewSpec, blur_kernel_size, view_order, view_specs

RATIO = (3.0 / 4.0, 4.0 / 3.0)  # RandomResizedCrop default aspect-ratio range
TRIES = 10
SOLARIZE_THRESHOLD = 127.5 / 255.0


@dataclass
class ViewParams:
    """Random parameters of one view for a batch (all tensors have batch size B)."""

    boxes: torch.Tensor  # long [B,4]: top, left, height, width
    flip: torch.Tensor  # bool [B]
    jitter: torch.Tensor  # bool [B]: colour jitter applied
    factors: torch.Tensor  # float [B,4]: brightness, contrast, saturation, hue
    order: torch.Tensor  # long [B,4]: op index applied at each of the 4 steps
    gray: torch.Tensor  # bool [B]
    blur: torch.Tensor  # bool [B]
    sigma: torch.Tensor  # float [B]
    solarize: torch.Tensor  # bool [B]
    noise: torch.Tensor | None = None  # float [B,1,s,s] standard normal, when noise_sigma > 0


def _uniform(
    n: int, lo: float, hi: float, gen: torch.Generator, shape: tuple[int, ...] = ()
) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(
        (n, *shape), generator=gen, device=gen.device, dtype=torch.float64
    )


def sample_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], gen: torch.Generator
) -> torch.Tensor:
    """RandomResizedCrop boxes ``[n,4]`` (top, left, h, w), torchvision's algorithm: area
    fraction ~ U(scale), log aspect ~ U(log 3/4, log 4/3), first of 10 tries that fits,
    else a centre crop clamped to the ratio range."""
    area = height * width
    target = area * _uniform(n, scale[0], scale[1], gen, (TRIES,))
    aspect = torch.exp(_uniform(n, math.log(RATIO[0]), math.log(RATIO[1]), gen, (TRIES,)))
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)
    any_ok = ok.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        fw, fh = width, round(width / RATIO[0])
    elif in_ratio > RATIO[1]:
        fw, fh = round(height * RATIO[1]), height
    else:
        fw, fh = width, height
    w = torch.where(any_ok, w, torch.full_like(w, fw))
    h = torch.where(any_ok, h, torch.full_like(h, fh))
    u = torch.rand((n, 2), generator=gen, device=gen.device, dtype=torch.float64)
    top = torch.floor(u[:, 0] * (height - h + 1)).long()
    left = torch.floor(u[:, 1] * (width - w + 1)).long()
    top = torch.where(any_ok, top, (height - h) // 2)
    left = torch.where(any_ok, left, (width - w) // 2)
    return torch.stack((top, left, h, w), dim=1)


def sample_view(
    n: int, height: int, width: int, spec: ViewSpec, crops: CropsConfig, gen: torch.Generator
) -> ViewParams:
    """Draw every random choice of one view for ``n`` samples."""
    b, c, s, hue = crops.color_jitter
    ranges = [
        (max(0.0, 1 - b), 1 + b),
        (max(0.0, 1 - c), 1 + c),
        (max(0.0, 1 - s), 1 + s),
        (-hue, hue),
    ]
    factors = torch.stack([_uniform(n, lo, hi, gen) for lo, hi in ranges], dim=1)
    order = torch.argsort(torch.rand((n, 4), generator=gen, device=gen.device), dim=1)
    coins = torch.rand((n, 5), generator=gen, device=gen.device, dtype=torch.float64)
    lo, hi = crops.blur_sigma
    return ViewParams(
        boxes=sample_boxes(n, height, width, spec.scale, gen),
        flip=coins[:, 0] < crops.flip_p,
        jitter=coins[:, 1] < crops.color_jitter_p,
        factors=factors,
        order=order,
        gray=coins[:, 2] < crops.grayscale_p,
        blur=coins[:, 3] < spec.blur_p,
        sigma=_uniform(n, lo, hi, gen),
        solarize=coins[:, 4] < spec.solarize_p,
        noise=None
        if crops.noise_sigma == 0
        else torch.randn(
            (n, 1, spec.size, spec.size), generator=gen, device=gen.device, dtype=torch.float32
        ),
    )


_JITTER_OPS = (ops.adjust_brightness, ops.adjust_contrast, ops.adjust_saturation, ops.adjust_hue)


def _on_subset(
    x: torch.Tensor, sel: torch.Tensor, fn: Callable[..., torch.Tensor], *args: torch.Tensor
) -> torch.Tensor:
    """``x`` with ``fn`` applied (in place) to the samples where ``sel``."""
    idx = torch.nonzero(sel).squeeze(1)
    if idx.numel() == x.shape[0]:
        return fn(x, *args)
    if idx.numel() > 0:
        x[idx] = fn(x[idx], *(a[idx] for a in args))
    return x


def apply_view(
    images: torch.Tensor, p: ViewParams, spec: ViewSpec, crops: CropsConfig
) -> torch.Tensor:
    """Apply one view's parameters to float ``[B,C,H,W]`` images in [0,1]; returns [0,1]."""
    dev = images.device
    p = dataclasses.replace(
        p, **{k: v.to(dev) for k, v in vars(p).items() if isinstance(v, torch.Tensor)}
    )
    x = ops.resized_crop(images, p.boxes, spec.size, p.flip)
    # saturation and hue do nothing to 1-channel images (torchvision/PIL behaviour)
    enabled = [v != 0 and (op < 2 or x.shape[1] == 3) for op, v in enumerate(crops.color_jitter)]
    if any(enabled):
        for step in range(4):
            for op in range(4):
                if not enabled[op]:
                    continue
                sel = p.jitter & (p.order[:, step] == op)
                f = p.factors[:, op].to(x.dtype)
                if op < 3:  # factor 1 is an exact identity: one op over the whole batch
                    x = _JITTER_OPS[op](x, torch.where(sel, f, torch.ones_like(f)))
                else:
                    x = _on_subset(x, sel, _JITTER_OPS[op], f)
    if x.shape[1] == 3:
        x = _on_subset(x, p.gray, lambda t: ops.grayscale(t).expand(-1, 3, -1, -1).contiguous())
    k = blur_kernel_size(spec.size)
    x = _on_subset(x, p.blur, lambda t, sg: ops.gaussian_blur(t, sg, k), p.sigma)
    x = _on_subset(x, p.solarize, lambda t: ops.solarize(t, SOLARIZE_THRESHOLD))
    if p.noise is not None:
        x = (x + crops.noise_sigma * p.noise.to(x.dtype)).clamp_(0.0, 1.0)
    return x


class BatchedMultiCrop:
    """uint8 ``[B,C,H,W]`` -> ``[global1, global2, *locals]``, each float
    ``[B,in_chans,s,s]`` normalised; randomness only from the ``generator`` argument."""

    def __init__(
        self,
        crops: CropsConfig,
        mean: Sequence[float],
        std: Sequence[float],
        in_chans: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.crops = crops
        self.in_chans = in_chans
        self.device = torch.device(device)
        self.specs = view_specs(crops)
        m, s = adapt_stats(mean, std, in_chans)
        self.mean = torch.tensor(m, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(s, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)

    @property
    def num_crops(self) -> int:
        return 2 + self.crops.local_number

    def sample(
        self, n: int, height: int, width: int, generator: torch.Generator
    ) -> list[ViewParams]:
        """Parameters of every output view, in output order."""
        return [
            sample_view(n, height, width, self.specs[i], self.crops, generator)
            for i in view_order(self.crops)
        ]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"BatchedMultiCrop expects uint8 [B,C,H,W], got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        b, _, h, w = images.shape
        params = self.sample(b, h, w, generator)
        return self.apply(images, params)

    def apply(self, images: torch.Tensor, params: list[ViewParams]) -> list[torch.Tensor]:
        """Render the views described by ``params`` (from :meth:`sample`)."""
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        out = []
        for i, p in zip(view_order(self.crops), params, strict=True):
            v = apply_view(x, p, self.specs[i], self.crops)
            v = adapt_channels(v, self.in_chans)
            out.append((v - self.mean) / self.std)
        return out
