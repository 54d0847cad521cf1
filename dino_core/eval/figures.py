"""PNG figures of attention maps, laid out like the paper's Figs. 1 and 3.

One row per image: the image | each head's CLS→patch map | the head-mean map over the image |
the mass mask of the mean map over the image. Drawn with matplotlib's Agg canvas through the
object API (no pyplot, no global backend switch), so it is safe in threads and headless jobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dino_core.eval.attention import PAPER_MASS_THRESHOLD, mass_mask, upsample_patches


def display_images(
    images: torch.Tensor, mean: tuple[float, ...] | None, std: tuple[float, ...] | None
) -> torch.Tensor:
    """Normalised model inputs ``[B, C, H, W]`` back to ``[0, 1]`` for display.

    Undoes ``(x - mean) / std`` when the stats match the channels, else rescales each image
    to its own min..max.
    """
    x = images.detach().float().cpu()
    c = x.shape[1]
    if mean is not None and std is not None and len(mean) == c and len(std) == c:
        m = torch.tensor(mean).view(1, c, 1, 1)
        s = torch.tensor(std).view(1, c, 1, 1)
        return (x * s + m).clamp(0.0, 1.0)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-8)


def transform_stats(
    transform: object,
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The normalisation ``(mean, std)`` of a transform (``EvalTransform``), if it has them."""
    out: list[tuple[float, ...] | None] = []
    for attr in ("mean", "std"):
        value = getattr(transform, attr, None)
        out.append(tuple(float(v) for v in value.flatten()) if value is not None else None)
    return out[0], out[1]


def _as_hwc(img: torch.Tensor) -> np.ndarray:
    arr = img.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def save_attention_figure(
    images: torch.Tensor,
    head_maps: torch.Tensor,
    path: str | Path,
    *,
    patch_size: tuple[int, int],
    threshold: float = PAPER_MASS_THRESHOLD,
    titles: list[str] | None = None,
    dpi: int = 100,
) -> str:
    """Write the figure for display images ``[B, C, H, W]`` in [0, 1] and maps
    ``[B, heads, h, w]``; returns the PNG path."""
    if images.shape[0] != head_maps.shape[0]:
        raise ValueError("one attention map set is needed per image")
    b, heads = int(head_maps.shape[0]), int(head_maps.shape[1])
    size = (int(images.shape[-2]), int(images.shape[-1]))
    maps = head_maps.detach().float().cpu()
    up_heads = upsample_patches(maps, patch_size, size)
    mean_map = maps.mean(dim=1)
    up_mean = upsample_patches(mean_map, patch_size, size)
    up_mask = upsample_patches(mass_mask(mean_map, threshold), patch_size, size)

    cols = heads + 3
    fig = Figure(figsize=(1.6 * cols, 1.7 * b), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(b, cols, squeeze=False)
    headers = ["image"] + [f"head {h}" for h in range(heads)] + ["mean", f"{threshold:.0%} mask"]
    for i in range(b):
        img = _as_hwc(images[i].detach().float().cpu().clamp(0, 1))
        gray = img.ndim == 2
        cmap = "gray" if gray else None
        axes[i, 0].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        for h in range(heads):
            axes[i, 1 + h].imshow(up_heads[i, h].numpy(), cmap="inferno", interpolation="nearest")
        axes[i, heads + 1].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[i, heads + 1].imshow(
            up_mean[i].numpy(), cmap="inferno", alpha=0.6, interpolation="nearest"
        )
        axes[i, heads + 2].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        keep = up_mask[i].numpy()
        shade = np.zeros((*size, 4), dtype=np.float32)  # darken what the mask drops
        shade[..., 3] = np.where(keep, 0.0, 0.7)
        axes[i, heads + 2].imshow(shade, interpolation="nearest")
        if keep.any() and not keep.all():
            axes[i, heads + 2].contour(keep.astype(np.float32), levels=[0.5], colors="cyan")
        if titles is not None and i < len(titles):
            axes[i, 0].set_ylabel(titles[i], fontsize=7)
        for j in range(cols):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(headers[j], fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return str(out)
