"""A directory of image files, searched recursively at any depth and decoded lazily.

Labels come from the first-level subfolder names (sorted) when every image sits inside
one; otherwise all labels are -1 (unlabeled). When ``<root>/<split>`` is a directory it is
used (``train/``, ``val/`` layouts), else ``root`` itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dino_core.config import DataConfig
from dino_core.data.base import DataNotFoundError, ImageDataset
from dino_core.data.roots import check_inside

EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
# ImageNet statistics, the normalisation of the official DINO code.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (any depth, hidden entries skipped), sorted. Directory
    symlinks are not followed; under a confinement an image that is a symlink must resolve
    inside the allowed roots."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if p.suffix.lower() in EXTENSIONS and p.is_file():
            if p.is_symlink():
                check_inside(p, "an image file under data.root")
            out.append(p)
    return sorted(out)


def decode_rgb(path: Path) -> torch.Tensor:
    """Decode an image file to uint8 ``[3,H,W]``."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except OSError as err:
        raise OSError(f"cannot decode image {str(path)!r}: {err}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class ImageFolderDataset(ImageDataset):
    """Lazily decoded RGB images from files; ``images`` is None."""

    def __init__(
        self, root: Path, paths: list[Path], labels: torch.Tensor, classes: list[str], name: str
    ) -> None:
        super().__init__(
            name=name,
            labels=labels,
            num_classes=len(classes),
            in_chans=3,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        self.root = root
        self.paths = paths
        self.classes = classes

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return decode_rgb(self.paths[index]), int(self.labels[index])

    def _take_extra(self, out: ImageDataset, rows: slice) -> None:
        assert isinstance(out, ImageFolderDataset)
        out.paths = self.paths[rows]


def load_image_folder(cfg: DataConfig, split: str) -> ImageFolderDataset:
    """Index the files under ``data.root`` (or ``data.root/<split>`` when it exists)."""
    if not cfg.root:
        raise DataNotFoundError(
            "data.dataset='image_folder' needs data.root: set it to a directory of images "
            "(class subfolders optional)"
        )
    base = Path(cfg.root).expanduser()
    if not base.is_dir():
        raise DataNotFoundError(f"data.root={cfg.root!r} is not a directory (image_folder)")
    root = base / split if (base / split).is_dir() else base
    paths = list_images(root)
    if not paths:
        raise DataNotFoundError(
            f"no images under {str(root)!r} (data.root, image_folder): expected files with "
            f"extensions {', '.join(sorted(EXTENSIONS))} at any depth"
        )
    rel = [p.relative_to(root).parts for p in paths]
    if all(len(parts) >= 2 for parts in rel):
        classes = sorted({parts[0] for parts in rel})
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[parts[0]] for parts in rel], dtype=torch.long)
    else:
        classes = []
        labels = torch.full((len(paths),), -1, dtype=torch.long)
    suffix = f":{split}" if root != base else ""
    return ImageFolderDataset(root, paths, labels, classes, name=f"image_folder{suffix}")
