"""CIFAR-10 and STL-10 through torchvision, held in memory as uint8 tensors.

Roots tried with ``download=False``: ``data.root``, ``$DINO_DATA_DIR/<name>``,
``$DINO_DATA_DIR``, ``/usr/share/datasets/<name>``; a download (to ``data.root``, else
``$DINO_DATA_DIR``, else ``~/.cache/dino/data``) is the last resort.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dino_core.config import DataConfig
from dino_core.data.base import DataNotFoundError, ImageDataset, check_split
from dino_core.data.paths import candidate_dirs, download_root, downloads_allowed, format_places

CIFAR10_SPLITS = ("train", "test")
STL10_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")
# Per-channel training-set statistics in [0,1] (commonly quoted values).
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
STL10_STATS = ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713))


def _open_first(cfg: DataConfig, name: str, make: Callable[[str, bool], Any], hint: str) -> Any:
    """Try ``make(root, download=False)`` on each root, then one download."""
    places: list[tuple[Path | str, str]] = []
    for root in candidate_dirs(cfg.root, [name], name):
        if not root.is_dir():
            places.append((root, "no such directory"))
            continue
        try:
            return make(str(root), False)
        except (RuntimeError, OSError) as err:
            places.append((root, str(err).strip().splitlines()[0]))
    target = download_root(cfg.root)
    if downloads_allowed():
        try:
            return make(str(target), True)
        except Exception as err:  # network, disk, checksum: all reported to the user
            places.append((f"torchvision download to {target}", str(err).strip().splitlines()[0]))
    else:
        places.append((f"torchvision download to {target}", "skipped (DINO_DATA_DOWNLOAD=0)"))
    raise DataNotFoundError(
        f"data.dataset={name!r} not found. Looked in:\n{format_places(places)}\n"
        f"To fix: set data.root or DINO_DATA_DIR to a directory holding {hint}, "
        "or allow the download (network access, DINO_DATA_DOWNLOAD unset)."
    )


def load_cifar10(cfg: DataConfig, split: str) -> ImageDataset:
    """CIFAR-10 ``train`` (50k) or ``test`` (10k), 32x32 RGB, 10 classes."""
    check_split("cifar10", split, CIFAR10_SPLITS)
    from torchvision.datasets import CIFAR10

    ds = _open_first(
        cfg,
        "cifar10",
        lambda root, dl: CIFAR10(root, train=split == "train", download=dl),
        "cifar-10-batches-py/",
    )
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(
        name=f"cifar10:{split}",
        images=images,
        labels=torch.as_tensor(np.asarray(ds.targets), dtype=torch.long),
        num_classes=10,
        in_chans=3,
        mean=CIFAR10_STATS[0],
        std=CIFAR10_STATS[1],
    )


def load_stl10(cfg: DataConfig, split: str) -> ImageDataset:
    """STL-10 ``train`` (5k), ``test`` (8k), ``unlabeled`` (100k, labels -1) or
    ``train+unlabeled``; 96x96 RGB, 10 classes."""
    check_split("stl10", split, STL10_SPLITS)
    from torchvision.datasets import STL10

    ds = _open_first(
        cfg, "stl10", lambda root, dl: STL10(root, split=split, download=dl), "stl10_binary/"
    )
    labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.long)
    return ImageDataset(
        name=f"stl10:{split}",
        images=torch.from_numpy(np.ascontiguousarray(ds.data)),
        labels=labels.clamp(min=-1),
        num_classes=10,
        in_chans=3,
        mean=STL10_STATS[0],
        std=STL10_STATS[1],
    )
