"""``load_dataset``: one entry point for every image source named by ``data.dataset``."""

from __future__ import annotations

from collections.abc import Callable

from dino_core.config import DataConfig
from dino_core.data.base import (
    DataNotFoundError,
    ImageDataset,
    SplitSpec,
    adapt_channels,
    adapt_stats,
    parse_split,
)
from dino_core.data.image_folder import load_image_folder
from dino_core.data.mnist import load_mnist_like
from dino_core.data.roots import resolve_root
from dino_core.data.shards import load_shards
from dino_core.data.synthetic import load_synthetic
from dino_core.data.torchvision_sets import load_cifar10, load_stl10

__all__ = [
    "DataNotFoundError",
    "ImageDataset",
    "SplitSpec",
    "adapt_channels",
    "adapt_stats",
    "load_dataset",
    "parse_split",
]

_LOADERS: dict[str, Callable[[DataConfig, str], ImageDataset]] = {
    "fashion_mnist": lambda cfg, split: load_mnist_like(cfg, "fashion_mnist", split),
    "mnist": lambda cfg, split: load_mnist_like(cfg, "mnist", split),
    "cifar10": load_cifar10,
    "stl10": load_stl10,
    "image_folder": load_image_folder,
    "synthetic": load_synthetic,
    "shards": load_shards,
}


def load_dataset(cfg: DataConfig, split: str) -> ImageDataset:
    """Load ``split`` of ``cfg.dataset``: ``"train"``, ``"test"``, ... with an optional
    slice suffix (``"test[:8000]"``, ``"test[8000:]"``), then keep the first ``cfg.limit``
    images. Both are deterministic (file order). Inside a confinement
    (:mod:`dino_core.data.roots`) ``data.root`` is resolved and checked first, and the
    resolved directory is the one opened."""
    spec = parse_split(split)
    if cfg.root is not None:
        cfg = cfg.model_copy(update={"root": resolve_root(cfg.root)})
    loader = _LOADERS.get(cfg.dataset)
    if loader is None:
        raise ValueError(
            f"data.dataset={cfg.dataset!r} is unknown: choose one of {', '.join(sorted(_LOADERS))}"
        )
    ds = loader(cfg, spec.base)
    if spec.rows is not None:
        ds = ds.take(spec.rows, spec.suffix)
        if len(ds) == 0:
            raise ValueError(
                f"split {split!r} of data.dataset={cfg.dataset!r} selects no "
                "images: check the slice bounds"
            )
    if cfg.limit is not None and cfg.limit < len(ds):
        ds = ds.take(slice(0, cfg.limit), f"[:{cfg.limit}]")
    return ds
