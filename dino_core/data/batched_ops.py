"""Batched image ops with per-sample parameters, on float images in [0,1] ``[B,C,H,W]``.

Each op reproduces the definition torchvision.transforms.v2 uses for one image (checked
against it in the tests), but takes one parameter per sample so a whole batch is one op.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dino_core.data.base import LUMA

_CUBIC_A = -0.5  # Keys cubic used by antialiased bicubic resampling (PIL and torch "aa")


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution kernel with a = -0.5, zero for |x| >= 2."""
    a = _CUBIC_A
    ax = x.abs()
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return torch.where(ax < 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def resample_weights(
    start: torch.Tensor, length: torch.Tensor, out_size: int, in_size: int
) -> torch.Tensor:
    """``[B, out_size, in_size]`` antialiased bicubic weights that crop ``[start,
    start+length)`` of each sample's axis and resize it to ``out_size`` (support widened
    by the downscale factor, clipped to the crop and renormalised, as torch's ``aa`` mode)."""
    start = start.to(torch.float32)[:, None, None]
    length = length.to(torch.float32)[:, None, None]
    scale = length / out_size  # input pixels per output pixel
    inv = 1.0 / scale.clamp(min=1.0)  # kernel stretched when downscaling
    dev = start.device
    i = torch.arange(out_size, dtype=torch.float32, device=dev)[None, :, None]
    x = torch.arange(in_size, dtype=torch.float32, device=dev)[None, None, :]
    center = scale * (i + 0.5)
    local = x - start  # input coordinate inside the crop
    w = _cubic((local + 0.5 - center) * inv)
    w = torch.where((local >= 0) & (local < length), w, torch.zeros_like(w))
    return w / w.sum(dim=-1, keepdim=True)


def resized_crop(
    images: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor
) -> torch.Tensor:
    """Crop ``boxes`` (``[B,4]`` top, left, height, width) and resize to ``size``x``size``
    with antialiased bicubic; mirror horizontally where ``flip``. Output clamped to [0,1]."""
    b, c, h, w = images.shape
    wy = resample_weights(boxes[:, 0], boxes[:, 2], size, h)  # [B,s,H]
    wx = resample_weights(boxes[:, 1], boxes[:, 3], size, w)  # [B,s,W]
    wx = torch.where(flip.to(wx.device)[:, None, None], wx.flip(1), wx)
    rows = torch.bmm(images.reshape(b, c * h, w), wx.transpose(1, 2))  # [B, C*H, s]
    rows = rows.reshape(b, c, h, size).transpose(1, 2).reshape(b, h, c * size)
    out = torch.bmm(wy, rows).reshape(b, size, c, size).permute(0, 2, 1, 3)  # [B, C, s, s]
    return out.contiguous().clamp_(0.0, 1.0)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``[B,1,H,W]`` of RGB images; 1-channel images are returned as they are."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1).to(x.dtype)
    return (f * x + (1 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * factor.view(-1, 1, 1, 1).to(x.dtype)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # no colour to saturate (torchvision/PIL behaviour)
        return x
    return _blend(x, grayscale(x), factor)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0,1] -> HSV with hue in [0,1)."""
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    gray = delta == 0
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    d = torch.where(gray, torch.ones_like(delta), delta)
    h = torch.where(
        maxc == r,
        (g - b) / d,
        torch.where(maxc == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d),
    )
    h = torch.where(gray, torch.zeros_like(h), (h / 6.0).remainder(1.0))
    return torch.stack((h, s, maxc), dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV (hue in [0,1)) -> RGB in [0,1]."""
    h, s, v = x.unbind(dim=1)
    h6 = h * 6.0
    sector = torch.floor(h6)
    frac = h6 - sector
    sector = sector.long().remainder(6)
    p = v * (1 - s)
    q = v * (1 - s * frac)
    t = v * (1 - s * (1 - frac))
    table = torch.stack(
        (
            torch.stack((v, q, p, p, t, v), dim=1),
            torch.stack((t, v, v, q, p, p), dim=1),
            torch.stack((p, p, t, v, v, q), dim=1),
        ),
        dim=1,
    )  # [B, 3 channels, 6 sectors, H, W]
    idx = sector[:, None, None].expand(-1, 3, 1, -1, -1)
    return table.gather(2, idx).squeeze(2)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``factor`` (fraction of a turn, in [-0.5, 0.5]) per sample."""
    if x.shape[1] == 1:
        return x
    hsv = rgb_to_hsv(x)
    h = (hsv[:, 0] + factor.view(-1, 1, 1).to(x.dtype)).remainder(1.0)
    return hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur, one sigma per sample, reflect padding (torchvision's)."""
    b, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    pos = torch.linspace(-half, half, kernel_size, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (pos[None] / sigma.to(x.dtype).view(-1, 1)) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [B*C, k]
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, kernel_size), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, kernel_size, 1), groups=b * c)
    return y.reshape(b, c, h, w)


def solarize(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert pixels at or above ``threshold`` (in [0,1] units)."""
    return torch.where(x >= threshold, 1.0 - x, x)
