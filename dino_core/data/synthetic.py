"""Generated shapes on plain or textured backgrounds, with exact object masks.

Each image holds one shape (its class) of random colour, size and position. By default half
the images have a plain background, half a textured one (noise, stripes or checker);
``backgrounds`` picks one kind for all. ``colors="fixed"`` paints every object in
:data:`FIXED_OBJECT` on a :data:`FIXED_BACKGROUND` base, so no colour tells two images
apart and shape (with size and position, which crops change) is what views share. A pixel
belongs to the object when its centre ``(x+0.5, y+0.5)`` lies inside the shape, so masks
are exact and hand-checkable (:func:`render_shape`). Fully deterministic by seed: the
options change values, never the random draws, so the same seed gives the same shapes,
sizes and positions under every option.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from dino_core.config import DataConfig
from dino_core.data.base import ImageDataset, check_split

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "x", "bar")
SPLIT_SEEDS = {"train": 20210429, "test": 20210430}
TEXTURES = ("noise", "stripes", "checker")
BACKGROUND_KINDS = {"plain": 0, "textured": 1}
FIXED_BACKGROUND = (40, 40, 40)
FIXED_OBJECT = (216, 216, 216)

Arr = np.ndarray
# Shapes in coordinates normalised by the radius r: (u, v) = ((x - cx) / r, (y - cy) / r).
_SHAPE_FNS: dict[str, Callable[[Arr, Arr], Arr]] = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.8,
    "triangle": lambda u, v: (v <= 0.8) & (np.abs(u) <= 0.6 * (v + 0.9)),
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    ),
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "x": lambda u, v: (
        ((np.abs(u - v) <= 0.4) | (np.abs(u + v) <= 0.4))
        & (np.maximum(np.abs(u), np.abs(v)) <= 0.8)
    ),
    "bar": lambda u, v: (np.abs(u) <= 1.0) & (np.abs(v) <= 0.35),
}


def render_shape(shape: str, size: int, cx: float, cy: float, r: float) -> Arr:
    """Bool mask ``[size, size]`` (rows = y) of one shape centred at ``(cx, cy)``, radius r."""
    if shape not in _SHAPE_FNS:
        raise ValueError(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")
    c = np.arange(size, dtype=np.float64) + 0.5
    u = (c[None, :] - cx) / r
    v = (c[:, None] - cy) / r
    return np.asarray(_SHAPE_FNS[shape](u, v), dtype=bool)


def _textures(rng: np.random.Generator, textured: Arr, size: int) -> Arr:
    """Texture patterns in [-1, 1], float32 ``[n, size, size]``: one kind (noise, stripes,
    checker) per image where ``textured``, zero elsewhere."""
    n = textured.shape[0]
    kind = rng.integers(0, len(TEXTURES), n)
    period = np.asarray(rng.uniform(3.0, max(4.0, size / 6), n), np.float32)[:, None, None]
    phase = np.asarray(rng.uniform(0.0, 1.0, n), np.float32)[:, None, None]
    theta = np.asarray(rng.integers(0, 4, n) * (np.pi / 4), np.float32)[:, None, None]
    noise_seed = int(rng.integers(0, 2**31))
    xs = np.arange(size, dtype=np.float32)[None, None, :]
    ys = np.arange(size, dtype=np.float32)[None, :, None]
    out = np.zeros((n, size, size), dtype=np.float32)
    noise = np.nonzero(textured & (kind == 0))[0]
    out[noise] = (
        np.random.default_rng(noise_seed).random((noise.size, size, size), dtype=np.float32) * 2 - 1
    )
    st = np.nonzero(textured & (kind == 1))[0]
    proj = xs * np.cos(theta[st]) + ys * np.sin(theta[st])
    out[st] = np.where(np.sin(2 * np.pi * (proj / period[st] + phase[st])) >= 0, 1.0, -1.0)
    ch = np.nonzero(textured & (kind == 2))[0]
    cell = np.floor(xs / period[ch] + phase[ch]) + np.floor(ys / period[ch] + phase[ch])
    out[ch] = np.where(cell % 2 == 0, 1.0, -1.0)
    return out


def make_synthetic(
    n: int,
    size: int,
    classes: int,
    seed: int,
    *,
    backgrounds: str = "mixed",
    colors: str = "random",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Generate ``(images uint8 [n,3,S,S], labels [n], masks bool [n,S,S], backgrounds [n])``.

    Labels are balanced (``i % classes``, shuffled). ``backgrounds="mixed"`` makes exactly
    half plain (0) and half textured (1); ``"plain"`` / ``"textured"`` makes all of one kind.
    ``colors="random"``: object colour differs from the background base colour by 80-176 in
    every channel (mod 256) so shapes stay visible on any background; ``"fixed"``: every
    image uses :data:`FIXED_OBJECT` on :data:`FIXED_BACKGROUND`.
    """
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"data.synthetic_classes={classes} must be in 2..{len(SHAPES)}")
    if backgrounds not in ("mixed", *BACKGROUND_KINDS):
        raise ValueError(
            f"data.synthetic_backgrounds={backgrounds!r}: choose mixed, plain or textured"
        )
    if colors not in ("random", "fixed"):
        raise ValueError(f"data.synthetic_colors={colors!r}: choose random or fixed")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes)
    kinds = rng.permutation(np.arange(n) % 2)
    if backgrounds != "mixed":
        kinds = np.full(n, BACKGROUND_KINDS[backgrounds])
    r = rng.uniform(0.15, 0.3, n) * size
    cx = r + rng.uniform(0.0, 1.0, n) * (size - 2 * r)
    cy = r + rng.uniform(0.0, 1.0, n) * (size - 2 * r)
    base = rng.integers(0, 256, (n, 3))
    obj = (base + rng.integers(80, 177, (n, 3))) % 256
    amp = rng.uniform(30.0, 60.0, n)
    if colors == "fixed":
        base = np.broadcast_to(np.asarray(FIXED_BACKGROUND), (n, 3))
        obj = np.broadcast_to(np.asarray(FIXED_OBJECT), (n, 3))

    c = np.arange(size, dtype=np.float64) + 0.5
    masks = np.zeros((n, size, size), dtype=bool)
    for k in range(classes):
        idx = np.nonzero(labels == k)[0]
        if idx.size == 0:
            continue
        u = (c[None, None, :] - cx[idx, None, None]) / r[idx, None, None]
        v = (c[None, :, None] - cy[idx, None, None]) / r[idx, None, None]
        masks[idx] = _SHAPE_FNS[SHAPES[k]](u, v)

    texture = _textures(rng, kinds == 1, size) * amp[:, None, None].astype(np.float32)
    bg = base[:, :, None, None].astype(np.float32) + texture[:, None]
    bg = np.clip(np.rint(bg), 0, 255).astype(np.uint8)
    images = np.where(masks[:, None], obj[:, :, None, None].astype(np.uint8), bg)
    return (
        torch.from_numpy(images),
        torch.from_numpy(labels.astype(np.int64)),
        torch.from_numpy(masks),
        torch.from_numpy(kinds.astype(np.int64)),
    )


@lru_cache(maxsize=8)
def reference_stats(
    size: int, classes: int, backgrounds: str = "mixed", colors: str = "random"
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std in [0,1] of 512 train-seed images (shared by every split)."""
    images = (
        make_synthetic(
            512, size, classes, SPLIT_SEEDS["train"], backgrounds=backgrounds, colors=colors
        )[0].double()
        / 255.0
    )
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def load_synthetic(cfg: DataConfig, split: str) -> ImageDataset:
    """``cfg.synthetic_size`` images for split ``"train"`` or ``"test"`` (different seeds)."""
    check_split("synthetic", split, tuple(SPLIT_SEEDS))
    size, classes = cfg.synthetic_image_size, cfg.synthetic_classes
    options = {"backgrounds": cfg.synthetic_backgrounds, "colors": cfg.synthetic_colors}
    images, labels, masks, backgrounds = make_synthetic(
        cfg.synthetic_size, size, classes, SPLIT_SEEDS[split], **options
    )
    mean, std = reference_stats(size, classes, **options)
    return ImageDataset(
        name=f"synthetic:{split}",
        images=images,
        labels=labels,
        num_classes=classes,
        in_chans=3,
        mean=mean,
        std=std,
        masks=masks,
        backgrounds=backgrounds,
    )
