"""How well attention finds the object: Jaccard of attention masks vs true object masks.

The paper (Sec. 4.2, Table 6) scores the 60%-mass masks against PASCAL VOC segmentations.
Here the ``synthetic`` data set carries exact object masks and a background type (plain or
textured), and MNIST / Fashion-MNIST carry thresholded-pixel masks (``data.mnist.FOREGROUND_MIN``:
light objects on black), so every checkpoint gets a number for "attention finds the object":
the mean IoU per head, of the best head and of the head-averaged map, overall and per
background.
"""

from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True)
class ImageMaskStats:
    """Per-image statistics of attention maps against object masks (tensors over a batch).

    The IoU says how well the ``threshold``-mass mask *matches* the object; precision and
    recall say which way it misses (a map peaked on two object patches has precision near 1
    and a small recall, and a low IoU on a large object); the object share is threshold-free:
    the share of the attention mass that lands on object pixels, against ``object_area``, the
    share a uniform map would put there (chance).
    """

    head_iou: torch.Tensor  # [B, heads]
    mean_iou: torch.Tensor  # [B], the head-mean map's mask
    head_precision: torch.Tensor  # [B, heads]: share of the mask's pixels on the object
    head_recall: torch.Tensor  # [B, heads]: share of the object's pixels inside the mask
    head_object_share: torch.Tensor  # [B, heads]: attention mass on object pixels
    object_area: torch.Tensor  # [B]: object pixels / pixels the patches cover (uniform map)

    def cpu(self) -> ImageMaskStats:
        return ImageMaskStats(**{f.name: getattr(self, f.name).cpu() for f in _FIELDS})

    @staticmethod
    def cat(parts: list[ImageMaskStats]) -> ImageMaskStats:
        return ImageMaskStats(
            **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in _FIELDS}
        )


_FIELDS = dataclasses.fields(ImageMaskStats)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` per entry, 0 where ``den`` is 0 (an empty mask or object)."""
    return torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num))


def image_mask_stats(
    head_maps: torch.Tensor,
    object_masks: torch.Tensor,
    patch_size: tuple[int, int],
    threshold: float = PAPER_MASS_THRESHOLD,
) -> ImageMaskStats:
    """All per-image statistics of ``head_maps`` ``[B, heads, h, w]`` against ``object_masks``
    ``[B, H, W]``: masks keep ``threshold`` of each map's mass (paper 0.6), are upsampled to
    the pixels and compared; the object share spreads each patch's mass evenly over its pixels.
    """
    if head_maps.ndim != 4 or object_masks.ndim != 3 or head_maps.shape[0] != len(object_masks):
        raise ValueError("expected head_maps [B, heads, h, w] and object_masks [B, H, W]")
    size = (int(object_masks.shape[-2]), int(object_masks.shape[-1]))
    truth = object_masks.bool().to(head_maps.device)
    per_head = upsample_patches(mass_mask(head_maps, threshold), patch_size, size)
    mean = upsample_patches(mass_mask(head_maps.mean(dim=1), threshold), patch_size, size)
    t = truth[:, None].expand_as(per_head)
    inter = (per_head & t).flatten(-2).sum(-1).double()
    covered = upsample_patches(torch.ones_like(head_maps[:, 0]), patch_size, size)  # [B, H, W]
    mass = head_maps.double() / head_maps.double().flatten(-2).sum(-1)[..., None, None]
    pixel_mass = upsample_patches(mass, patch_size, size) / float(patch_size[0] * patch_size[1])
    on_object = (truth & (covered > 0)).flatten(-2).sum(-1).double()
    return ImageMaskStats(
        head_iou=mask_iou(per_head, t),
        mean_iou=mask_iou(mean, truth),
        head_precision=_ratio(inter, per_head.flatten(-2).sum(-1).double()),
        head_recall=_ratio(inter, t.flatten(-2).sum(-1).double()),
        head_object_share=(pixel_mass * truth[:, None]).flatten(-2).sum(-1),
        object_area=_ratio(on_object, covered.flatten(-2).sum(-1).double()),
    )


@dataclass(frozen=True)
class MaskScore:
    """Mean IoU (0..1) of attention masks against object masks, and why it is what it is."""

    threshold: float
    n_images: int
    per_head: list[float]
    best_head: int  # chosen on all images
    best_head_iou: float
    mean_map_iou: float
    by_background: dict[str, dict[str, object]]
    best_head_precision: float  # of the best head's masks: share of their pixels on the object
    best_head_recall: float  # share of the object's pixels the best head's masks cover
    object_share_per_head: list[float]  # attention mass on object pixels (threshold-free)
    object_area: float  # the object share of a uniform map: chance

    @property
    def max_object_share(self) -> float:
        return max(self.object_share_per_head)

    def to_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            "n_images": self.n_images,
            "per_head": self.per_head,
            "best_head": self.best_head,
            "best_head_iou": self.best_head_iou,
            "mean_map_iou": self.mean_map_iou,
            "best_head_precision": self.best_head_precision,
            "best_head_recall": self.best_head_recall,
            "object_share_per_head": self.object_share_per_head,
            "max_object_share": self.max_object_share,
            "object_area": self.object_area,
            "by_background": self.by_background,
        }


def _floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t]


def summarize_mask_stats(
    stats: ImageMaskStats,
    backgrounds: torch.Tensor | None,
    threshold: float = PAPER_MASS_THRESHOLD,
) -> MaskScore:
    """Average the per-image statistics; split by background code if given.

    The best head is the one with the highest mean IoU over all images; each background group
    reports its per-head IoUs and object shares, the IoU of the overall best head and of the
    mean map, and its chance share.
    """
    head_iou = stats.head_iou
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
                "per_head": _floats(head_iou[sel].mean(dim=0)),
                "best_head_iou": float(head_iou[sel, best].mean()),
                "mean_map_iou": float(stats.mean_iou[sel].mean()),
                "object_share_per_head": _floats(stats.head_object_share[sel].mean(dim=0)),
                "object_area": float(stats.object_area[sel].mean()),
            }
    return MaskScore(
        threshold=threshold,
        n_images=int(head_iou.shape[0]),
        per_head=_floats(per_head),
        best_head=best,
        best_head_iou=float(per_head[best]),
        mean_map_iou=float(stats.mean_iou.mean()),
        by_background=groups,
        best_head_precision=float(stats.head_precision[:, best].mean()),
        best_head_recall=float(stats.head_recall[:, best].mean()),
        object_share_per_head=_floats(stats.head_object_share.mean(dim=0)),
        object_area=float(stats.object_area.mean()),
    )
