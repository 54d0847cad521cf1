"""WebDataset-style tar shards: the format, the index and the random-access data set.

A shard set is a directory or URL prefix (``/data/fmnist/train``, ``s3://bucket/imagenet/train``)
holding ``shard-000000.tar``, ``shard-000001.tar``, ... and ``index.json``. Each tar holds, per
image, ``<key>.<ext>`` (the encoded image: PNG, or a folder's original JPEG/PNG bytes) and
``<key>.cls`` (the label as text), so standard tar and WebDataset tools read the shards. The
index, written last (a reader that finds it finds every shard complete), records per shard the
sample count and the byte offset and size of each image inside the tar, plus the labels and
the normalisation statistics: readers fetch exactly the byte ranges they need (one ranged read
per shard piece), and the data set has random access for evaluation. The index costs about 20
bytes per image (about 26 MB for ImageNet-1k's 1.28 M images, read once per process).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from PIL import Image

from dino_core.config import DataConfig
from dino_core.data.base import DataNotFoundError, ImageDataset
from dino_core.storage import filesystem, join

FORMAT = "dino-shards/1"
INDEX = "index.json"


def shard_name(i: int) -> str:
    return f"shard-{i:06d}.tar"


@dataclass(frozen=True)
class ShardInfo:
    """One tar: its name, and per image the byte offset and size of the encoded image."""

    name: str
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.offsets)


@dataclass(frozen=True)
class ShardIndex:
    """``index.json``: the shards in file order; image ``i`` of the set is the ``i``-th image
    counting through the shards in that order."""

    shards: tuple[ShardInfo, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: tuple[int, int] | None  # (H, W) when every image has it, else None

    @cached_property
    def starts(self) -> list[int]:
        """Global id of each shard's first image."""
        out, n = [], 0
        for s in self.shards:
            out.append(n)
            n += s.count
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "num_images": len(self.labels),
                "classes": list(self.classes),
                "in_chans": self.in_chans,
                "mean": list(self.mean),
                "std": list(self.std),
                "image_size": list(self.image_size) if self.image_size else None,
                "labels": list(self.labels),
                "shards": [
                    {"name": s.name, "offsets": list(s.offsets), "sizes": list(s.sizes)}
                    for s in self.shards
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> ShardIndex:
        raw: dict[str, Any] = json.loads(text)
        if raw.get("format") != FORMAT:
            found = raw.get("format")
            raise DataNotFoundError(f"{where} is not a {FORMAT} index (format {found!r})")
        size = raw.get("image_size")
        return cls(
            shards=tuple(
                ShardInfo(s["name"], tuple(s["offsets"]), tuple(s["sizes"])) for s in raw["shards"]
            ),
            labels=tuple(int(v) for v in raw["labels"]),
            classes=tuple(raw["classes"]),
            in_chans=int(raw["in_chans"]),
            mean=tuple(raw["mean"]),
            std=tuple(raw["std"]),
            image_size=(int(size[0]), int(size[1])) if size else None,
        )


def decode_image(data: bytes, in_chans: int) -> torch.Tensor:
    """Encoded bytes -> uint8 ``[C,H,W]`` with the set's native channels (1 = L, 3 = RGB)."""
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert("L" if in_chans == 1 else "RGB"), dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def encode_png(img: torch.Tensor) -> bytes:
    """uint8 ``[C,H,W]`` (1 or 3 channels) -> PNG bytes (lossless)."""
    arr = img.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


class ShardDataset(ImageDataset):
    """The images of a shard set, decoded on access (``images`` is None); ``ids`` are the
    global image ids it holds, in order (a slice after ``take``)."""

    def __init__(self, root: str, index: ShardIndex, name: str) -> None:
        super().__init__(
            name=name,
            labels=torch.tensor(index.labels, dtype=torch.long),
            num_classes=len(index.classes),
            in_chans=index.in_chans,
            mean=index.mean,
            std=index.std,
        )
        self.root = root
        self.index = index
        self.ids = np.arange(len(index.labels), dtype=np.int64)

    def _take_extra(self, out: ImageDataset, rows: slice) -> None:
        assert isinstance(out, ShardDataset)
        out.ids = self.ids[rows]

    def locate(self, image_id: int) -> tuple[ShardInfo, int]:
        """The shard holding global image ``image_id`` and the image's position in it."""
        starts = self.index.starts
        s = int(np.searchsorted(starts, image_id, side="right")) - 1
        return self.index.shards[s], image_id - starts[s]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image_id = int(self.ids[index])
        shard, pos = self.locate(image_id)
        fs, path = filesystem(join(self.root, shard.name))
        start = shard.offsets[pos]
        data = fs.cat_file(path, start=start, end=start + shard.sizes[pos])
        return decode_image(bytes(data), self.in_chans), int(self.labels[index])


def index_path(cfg: DataConfig, split: str) -> str:
    """``<root>/<split>/index.json`` when it exists, else ``<root>/index.json``."""
    if not cfg.root:
        raise DataNotFoundError(
            "data.dataset='shards' needs data.root: the directory or URL (s3://bucket/prefix) "
            "of a shard set written by `dino data shard`"
        )
    for cand in (join(cfg.root, split, INDEX), join(cfg.root, INDEX)):
        fs, path = filesystem(cand)
        if fs.exists(path):
            return cand
    raise DataNotFoundError(
        f"no {INDEX} under data.root={cfg.root!r} (looked for {split}/{INDEX} and {INDEX}): "
        "write the shards with `dino data shard SRC DEST`"
    )


def load_shards(cfg: DataConfig, split: str) -> ShardDataset:
    """The shard set of ``split`` under ``data.root`` (see :func:`index_path`)."""
    where = index_path(cfg, split)
    fs, path = filesystem(where)
    index = ShardIndex.from_json(fs.cat_file(path).decode(), where)
    root = where.rsplit("/", 1)[0]
    return ShardDataset(root, index, name=f"shards:{root.rsplit('/', 1)[-1]}")
