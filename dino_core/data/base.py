"""The dataset contract shared by every image source, split strings and channel adaptation."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

# ITU-R 601-2 luma weights, the ones torchvision's rgb_to_grayscale uses.
LUMA = (0.2989, 0.587, 0.114)


class DataNotFoundError(FileNotFoundError):
    """A data set or split that cannot be found; the message lists where we looked."""


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images as uint8 ``[C,H,W]`` in their native channels, with labels (-1 = unknown).

    In-memory sets keep ``images`` (uint8 ``[N,C,H,W]``), which enables the batched
    multi-crop pipeline; lazily decoded sets (image folders) have ``images = None`` and
    override :meth:`__getitem__`.
    """

    def __init__(
        self,
        *,
        name: str,
        labels: torch.Tensor,
        num_classes: int,
        in_chans: int,
        mean: Sequence[float],
        std: Sequence[float],
        images: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        backgrounds: torch.Tensor | None = None,
    ) -> None:
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"{name}: mean/std need {in_chans} values (one per channel)")
        if images is not None and (images.dtype != torch.uint8 or images.dim() != 4):
            raise ValueError(
                f"{name}: images must be uint8 [N,C,H,W], got {images.dtype} {tuple(images.shape)}"
            )
        if images is not None and images.shape[0] != labels.shape[0]:
            raise ValueError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
        self.name = name
        self.labels = labels.long()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.images = images
        self.masks = masks
        self.backgrounds = backgrounds

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.images is None:
            raise TypeError(
                f"{type(self).__name__} {self.name!r} holds no in-memory images "
                "and does not decode items itself"
            )
        return self.images[index], int(self.labels[index])

    def take(self, rows: slice, suffix: str = "") -> ImageDataset:
        """A shallow copy holding only ``rows`` (a slice of the item order)."""
        out = copy.copy(self)
        out.labels = self.labels[rows]
        for field in ("images", "masks", "backgrounds"):
            value = getattr(self, field)
            if value is not None:
                setattr(out, field, value[rows])
        out.name = self.name + suffix
        self._take_extra(out, rows)
        return out

    def _take_extra(self, out: ImageDataset, rows: slice) -> None:
        """Subclasses slice their own per-item state here (e.g. file paths)."""

    def __repr__(self) -> str:
        where = "in memory" if self.images is not None else "lazy"
        return (
            f"{type(self).__name__}({self.name!r}, n={len(self)}, "
            f"classes={self.num_classes}, in_chans={self.in_chans}, {where})"
        )


@dataclass(frozen=True)
class SplitSpec:
    """``"test[:8000]"`` parsed: the base split and an optional Python-style slice."""

    base: str
    rows: slice | None

    @property
    def suffix(self) -> str:
        if self.rows is None:
            return ""
        start = "" if self.rows.start is None else str(self.rows.start)
        stop = "" if self.rows.stop is None else str(self.rows.stop)
        return f"[{start}:{stop}]"


_SPLIT_RE = re.compile(r"^\s*([A-Za-z0-9_+\-]+)\s*(?:\[\s*(-?\d*)\s*:\s*(-?\d*)\s*\])?\s*$")


def parse_split(split: str) -> SplitSpec:
    """Parse ``name`` or ``name[start:stop]`` (start/stop optional, negative allowed)."""
    m = _SPLIT_RE.match(split)
    if m is None:
        raise ValueError(
            f"split {split!r} (data.split / data.eval_split) is malformed: use a name such as "
            "'train' or 'test', optionally sliced like 'test[:8000]' or 'test[8000:]'"
        )
    base, start, stop = m.group(1), m.group(2), m.group(3)
    if start is None:
        return SplitSpec(base, None)
    return SplitSpec(base, slice(int(start) if start else None, int(stop) if stop else None))


def check_split(dataset: str, base: str, valid: Sequence[str]) -> None:
    """Raise a clear error when ``base`` is not one of the data set's splits."""
    if base not in valid:
        raise ValueError(
            f"data.dataset={dataset!r} has no split {base!r}: choose one of "
            f"{', '.join(repr(v) for v in valid)} (optionally sliced, 'test[:8000]')"
        )


def adapt_channels(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Map ``[...,C,H,W]`` to ``in_chans`` channels: 1->3 repeats, 3->1 takes the luminance.

    Integer inputs stay integer (luminance rounded); float inputs stay float.
    """
    c = x.shape[-3]
    if c == in_chans:
        return x
    if c == 1 and in_chans == 3:
        reps = [1] * x.dim()
        reps[-3] = 3
        return x.repeat(reps)
    if c == 3 and in_chans == 1:
        w = torch.tensor(LUMA, dtype=torch.float32, device=x.device).view(3, 1, 1)
        lum = (x.float() * w).sum(dim=-3, keepdim=True)
        if x.is_floating_point():
            return lum.to(x.dtype)
        return lum.round_().clamp_(0, 255).to(x.dtype)
    raise ValueError(
        f"cannot adapt {c}-channel images to model.in_chans={in_chans}: "
        "supported are 1->3 and 3->1; set model.in_chans to the data's channels"
    )


def adapt_stats(
    mean: Sequence[float], std: Sequence[float], in_chans: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel normalisation stats after :func:`adapt_channels`.

    1->3 repeats; 3->1 uses the luma-weighted mean and (for the std) the weighted sum,
    exact when the channels are perfectly correlated and an upper bound otherwise.
    """
    c = len(mean)
    if c == in_chans:
        return tuple(mean), tuple(std)
    if c == 1 and in_chans == 3:
        return (mean[0],) * 3, (std[0],) * 3
    if c == 3 and in_chans == 1:
        m = sum(w * v for w, v in zip(LUMA, mean, strict=True))
        s = sum(w * v for w, v in zip(LUMA, std, strict=True))
        return (m,), (s,)
    raise ValueError(f"cannot adapt {c}-channel statistics to model.in_chans={in_chans}")
