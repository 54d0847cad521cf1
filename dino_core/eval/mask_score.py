"""How well attention finds the object: Jaccard of attention masks vs true object masks.

The paper (Sec. 4.2, Table 6) scores the 60%-mass masks against PASCAL VOC segmentations.
Here the ``synthetic`` data set carries exact object masks and a background type (plain or
textured), and MNIST / Fashion-MNIST carry thresholded-pixel masks (``data.mnist.FOREGROUND_MIN``:
light objects on black), so every checkpoint gets a number for "attention finds the object":
the mean IoU per head, of the best head and of the head-averaged map, overall and per
background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dino_core.eval.attention import PAPER_MASS_THRESHOLD, mass_mask, upsample_patches

BACKGROUND_NAMES = {0: "plain", 1: "textured"}


def mask_iou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Jaccard index ``|A∩B| / |A∪B|`` over the last two dims; two empty masks score 1."""
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: predicted {tuple(pred.shape)}, true {true.shape}")
    p, t = pred.bool(), true.bool()
    inter = (p & t).flatten(-2).sum(-1).double()
    union = (p | t).flatten(-2).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def image_ious(
    head_maps: torch.Tensor,
    object_masks: torch.Tensor,
    patch_size: tuple[int, int],
    threshold: float = PAPER_MASS_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU per image and head ``[B, heads]`` and of the head-mean map ``[B]``.

    ``head_maps`` ``[B, heads, h, w]`` are thresholded at ``threshold`` of their mass, the
    patch masks are upsampled to the ``[B, H, W]`` pixels of ``object_masks`` and compared.
    """
    if head_maps.ndim != 4 or object_masks.ndim != 3 or head_maps.shape[0] != len(object_masks):
        raise ValueError("expected head_maps [B, heads, h, w] and object_masks [B, H, W]")
    size = (int(object_masks.shape[-2]), int(object_masks.shape[-1]))
    truth = object_masks.bool().to(head_maps.device)
    per_head = upsample_patches(mass_mask(head_maps, threshold), patch_size, size)
    mean = upsample_patches(mass_mask(head_maps.mean(dim=1), threshold), patch_size, size)
    return mask_iou(per_head, truth[:, None].expand_as(per_head)), mask_iou(mean, truth)


@dataclass(frozen=True)
class MaskScore:
    """Mean IoU (0..1) of attention masks against object masks."""

    threshold: float
    n_images: int
    per_head: list[float]
    best_head: int  # chosen on all images
    best_head_iou: float
    mean_map_iou: float
    by_background: dict[str, dict[str, object]]

    def to_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            "n_images": self.n_images,
            "per_head": self.per_head,
            "best_head": self.best_head,
            "best_head_iou": self.best_head_iou,
            "mean_map_iou": self.mean_map_iou,
            "by_background": self.by_background,
        }


def summarize_ious(
    head_iou: torch.Tensor,
    mean_iou: torch.Tensor,
    backgrounds: torch.Tensor | None,
    threshold: float = PAPER_MASS_THRESHOLD,
) -> MaskScore:
    """Average per-image IoUs ``[N, heads]`` / ``[N]``; split by background code if given.

    Each background group reports its per-head IoUs, the IoU of the overall best head and of
    the mean map.
    """
    if head_iou.shape[0] == 0:
        raise ValueError("no images to score: the mask score needs at least one image")
    per_head = head_iou.mean(dim=0)
    best = int(per_head.argmax())
    groups: dict[str, dict[str, object]] = {}
    if backgrounds is not None:
        if backgrounds.shape[0] != head_iou.shape[0]:
            raise ValueError("backgrounds must have one entry per scored image")
        for code in sorted({int(c) for c in backgrounds.tolist()}):
            sel = backgrounds == code
            name = BACKGROUND_NAMES.get(code, f"background_{code}")
            groups[name] = {
                "n_images": int(sel.sum()),
                "per_head": [float(v) for v in head_iou[sel].mean(dim=0)],
                "best_head_iou": float(head_iou[sel, best].mean()),
                "mean_map_iou": float(mean_iou[sel].mean()),
            }
    return MaskScore(
        threshold=threshold,
        n_images=int(head_iou.shape[0]),
        per_head=[float(v) for v in per_head],
        best_head=best,
        best_head_iou=float(per_head[best]),
        mean_map_iou=float(mean_iou.mean()),
        by_background=groups,
    )
