"""MNIST and Fashion-MNIST from IDX files (28x28 grayscale, 10 classes).

Search order: ``data.root`` (and torchvision's ``<root>/<MNIST|FashionMNIST>/raw``),
``$DINO_DATA_DIR/<name>``, ``$DINO_DATA_DIR``, ``/usr/share/datasets/<name>`` (Debian's
``dataset-fashion-mnist``), for MNIST the repository's ``shared/data/mnist-t10k`` (test
split only), then torchvision's downloader as the last resort (needs a network).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dino_core.config import DataConfig
from dino_core.data.base import DataNotFoundError, ImageDataset, check_split
from dino_core.data.idx import read_idx
from dino_core.data.paths import (
    candidate_dirs,
    download_root,
    downloads_allowed,
    find_shared_dir,
    format_places,
)

SPLITS = ("train", "test")
# Object masks for the attention-mask score (paper Sec. 4.2 scores masks against segmentations;
# these digits and garments are light objects on a black background): a pixel belongs to the
# object when its value is at least 10% of full intensity. Dark parts inside a garment (below
# the threshold) count as background, which is what a pixel threshold can say.
FOREGROUND_MIN = 26  # of 255
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class _Source:
    dataset: str  # config name
    subdir: str  # $DINO_DATA_DIR/<subdir> and /usr/share/datasets/<subdir>
    tv_name: str  # torchvision class and folder name
    mean: float  # training-set pixel mean in [0,1] (commonly quoted values)
    std: float


_SOURCES = {
    "fashion_mnist": _Source("fashion_mnist", "fashion-mnist", "FashionMNIST", 0.2860, 0.3530),
    "mnist": _Source("mnist", "mnist", "MNIST", 0.1307, 0.3081),
}


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        p = directory / name
        if p.is_file():
            return p
    return None


def _pair(directory: Path, split: str) -> tuple[Path, Path] | None:
    img_stem, lbl_stem = _FILES[split]
    images, labels = _find_file(directory, img_stem), _find_file(directory, lbl_stem)
    return (images, labels) if images is not None and labels is not None else None


def _search_dirs(cfg: DataConfig, src: _Source) -> list[Path]:
    dirs = candidate_dirs(cfg.root, [src.subdir, f"{src.tv_name}/raw"], src.subdir)
    if src.dataset == "mnist":
        shared = find_shared_dir("shared/data/mnist-t10k")
        if shared is not None:
            dirs.append(shared)
    return dirs


def _download(cfg: DataConfig, src: _Source, split: str) -> tuple[tuple[Path, Path] | None, str]:
    """Try torchvision's downloader; return the files or the reason it failed."""
    if not downloads_allowed():
        return None, "skipped (DINO_DATA_DOWNLOAD=0)"
    import torchvision.datasets as tvd

    root = download_root(cfg.root)
    try:
        getattr(tvd, src.tv_name)(str(root), train=split == "train", download=True)
    except Exception as err:  # network, permissions, checksum: all reported to the user
        return None, f"download failed: {str(err).strip().splitlines()[0]}"
    found = _pair(root / src.tv_name / "raw", split)
    return found, "downloaded" if found else "download finished but the IDX files are missing"


def load_mnist_like(cfg: DataConfig, dataset: str, split: str) -> ImageDataset:
    """Load split ``"train"`` or ``"test"`` of ``"mnist"`` / ``"fashion_mnist"``."""
    src = _SOURCES[dataset]
    check_split(dataset, split, SPLITS)
    places: list[tuple[Path | str, str]] = []
    other = "test" if split == "train" else "train"
    other_found: Path | None = None
    found: tuple[Path, Path] | None = None
    for d in _search_dirs(cfg, src):
        if not d.is_dir():
            places.append((d, "no such directory"))
            continue
        found = _pair(d, split)
        if found is not None:
            break
        if other_found is None and _pair(d, other) is not None:
            other_found = d
        places.append((d, f"no {_FILES[split][0]}[.gz] + {_FILES[split][1]}[.gz]"))
    if found is None:
        found, why = _download(cfg, src, split)
        places.append((f"torchvision {src.tv_name} download to {download_root(cfg.root)}", why))
    if found is None:
        raise DataNotFoundError(_not_found_message(src, split, places, other_found))
    images = read_idx(found[0])
    labels = read_idx(found[1])
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise DataNotFoundError(
            f"{found[0]} / {found[1]}: expected images [N,H,W] and labels [N], got "
            f"{images.shape} and {labels.shape}"
        )
    pixels = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).unsqueeze(1)
    return ImageDataset(
        name=f"{dataset}:{split}",
        images=pixels,
        masks=pixels[:, 0] >= FOREGROUND_MIN,
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=10,
        in_chans=1,
        mean=(src.mean,),
        std=(src.std,),
    )


def _not_found_message(
    src: _Source, split: str, places: list[tuple[Path | str, str]], other_found: Path | None
) -> str:
    lines = [
        f"data.dataset={src.dataset!r}: split {split!r} not found. Looked in:",
        format_places(places),
    ]
    if other_found is not None and split == "train":
        lines.append(
            f"Only the test split (t10k) was found, at {other_found}. Pretrain on part of it, "
            'e.g. data.split="test[:8000]" and data.eval_split="test[8000:]".'
        )
    hint = (
        "apt-get install dataset-fashion-mnist (installs /usr/share/datasets/fashion-mnist)"
        if src.dataset == "fashion_mnist"
        else "put the MNIST IDX files in a directory"
    )
    lines.append(
        f"To fix: {hint}, or set data.root / DINO_DATA_DIR to a directory holding "
        f"{_FILES[split][0]}.gz and {_FILES[split][1]}.gz, or allow a download "
        "(network access, DINO_DATA_DOWNLOAD unset)."
    )
    return "\n".join(lines)
