"""Writing shard sets (:mod:`dino_core.data.shards`): any data set ``load_dataset`` opens, an
image folder or Fashion-MNIST included, as tars of ``shard_size`` images plus the index.

Image folders keep their files' bytes (JPEG stays JPEG); in-memory sets are encoded as
lossless PNG. Shards are published whole (:func:`dino_core.storage.publish`) and the index
last, so a reader that finds the index finds every shard complete.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Sequence

from dino_core.config import DataConfig, DatasetName
from dino_core.data.base import ImageDataset
from dino_core.data.datasets import load_dataset
from dino_core.data.image_folder import ImageFolderDataset
from dino_core.data.shards import INDEX, ShardIndex, ShardInfo, encode_png, shard_name
from dino_core.storage import join, publish

DEFAULT_SHARD_SIZE = 1000
# the splits written when none are named: a folder is one split, the labelled sets have two
DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {"image_folder": ("train",)}
TWO_SPLITS = ("train", "test")


def _encoded(ds: ImageDataset, i: int) -> tuple[str, bytes]:
    """(extension, bytes) of image ``i``: a folder's file as it is, else lossless PNG."""
    if isinstance(ds, ImageFolderDataset):
        path = ds.paths[i]
        return path.suffix.lower().lstrip("."), path.read_bytes()
    return "png", encode_png(ds[i][0])


def _image_size(ds: ImageDataset) -> tuple[int, int] | None:
    if ds.images is not None:
        return int(ds.images.shape[-2]), int(ds.images.shape[-1])
    return None


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Append ``name``; the offset of its data in the tar."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # identical input, identical shards
    header = info.tobuf(tarfile.USTAR_FORMAT, tar.encoding, tar.errors)
    start = tar.offset + len(header)
    tar.addfile(info, io.BytesIO(data))
    return start


def _shard_bytes(items: Sequence[tuple[str, str, bytes, int]]) -> tuple[bytes, ShardInfo]:
    buf = io.BytesIO()
    offsets, sizes = [], []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, ext, data, label in items:
            offsets.append(_tar_member(tar, f"{key}.{ext}", data))
            sizes.append(len(data))
            _tar_member(tar, f"{key}.cls", str(label).encode())
    return buf.getvalue(), ShardInfo("", tuple(offsets), tuple(sizes))


def _chunks(ds: ImageDataset, shard_size: int) -> Iterator[list[tuple[str, str, bytes, int]]]:
    items: list[tuple[str, str, bytes, int]] = []
    for i in range(len(ds)):
        ext, data = _encoded(ds, i)
        items.append((f"{i:09d}", ext, data, int(ds.labels[i])))
        if len(items) == shard_size:
            yield items
            items = []
    if items:
        yield items


def write_shards(ds: ImageDataset, dest: str, shard_size: int = DEFAULT_SHARD_SIZE) -> ShardIndex:
    """Write ``ds`` as shards of ``shard_size`` images under ``dest`` (path or URL), then the
    index; returns the index."""
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size} must be at least 1")
    if len(ds) == 0:
        raise ValueError(f"data set {ds.name!r} holds no images to shard")
    shards = []
    for n, items in enumerate(_chunks(ds, shard_size)):
        data, info = _shard_bytes(items)
        publish(join(dest, shard_name(n)), data)
        shards.append(ShardInfo(shard_name(n), info.offsets, info.sizes))
    classes = getattr(ds, "classes", None) or [str(c) for c in range(ds.num_classes)]
    index = ShardIndex(
        shards=tuple(shards),
        labels=tuple(int(v) for v in ds.labels.tolist()),
        classes=tuple(str(c) for c in classes),
        in_chans=ds.in_chans,
        mean=ds.mean,
        std=ds.std,
        image_size=_image_size(ds),
    )
    publish(join(dest, INDEX), index.to_json().encode())
    return index


def shard_source(
    src: str,
    dest: str,
    dataset: DatasetName = "image_folder",
    splits: Sequence[str] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> dict[str, ShardIndex]:
    """Shard each split of ``dataset`` found under ``src`` (``data.root``) into
    ``dest/<split>``; train with ``data.dataset: shards``, ``data.root: dest``."""
    cfg = DataConfig(dataset=dataset, root=src)
    wanted = list(splits or DEFAULT_SPLITS.get(dataset, TWO_SPLITS))
    return {s: write_shards(load_dataset(cfg, s), join(dest, s), shard_size) for s in wanted}
