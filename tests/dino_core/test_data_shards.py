"""Shard sets: written and read back exactly, every image once per epoch across 2 ranks x 2
DataLoader workers, the same order for the same seed, an exact mid-epoch resume, both crop
pipelines, and a training run on shards in an S3 bucket (moto's server) resumed mid-epoch."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dino_core.checkpoint import load_checkpoint
from dino_core.config import DataConfig, DinoConfig
from dino_core.data import ImageDataset, build_train_loader, load_dataset
from dino_core.data.base import DataNotFoundError
from dino_core.data.shard_loader import ShardLoader, buffer_order, round_robin
from dino_core.data.shard_writer import write_shards
from dino_core.data.shards import ShardDataset
from dino_core.train import train
from tests.dino_core.conftest import tiny_config
from tests.dino_core.test_train import Crash, CrashAt
from tests.s3server import S3Server, s3_server

__all__ = ["s3_server"]

N = 40  # 7 shards of 6 (the last of 4); batch 8 over 2 ranks: 5 batches, blocks of 3 and 2


def _source(n: int = N) -> ImageDataset:
    """Images whose pixels spell their index, so every read can be checked."""
    idx = torch.arange(n, dtype=torch.int64)
    images = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    images[:, 0, 0, :] = (idx % 256).to(torch.uint8).view(n, 1)
    images[:, 0, 1, :] = (idx // 256).to(torch.uint8).view(n, 1)
    noise = torch.randint(0, 256, (n, 6, 8), generator=torch.Generator().manual_seed(0))
    images[:, 0, 2:, :] = noise.to(torch.uint8)
    return ImageDataset(
        name="spelled",
        images=images,
        labels=idx % 3,
        num_classes=3,
        in_chans=1,
        mean=(0.5,),
        std=(0.25,),
    )


@pytest.fixture(scope="module")
def shard_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    dest = tmp_path_factory.mktemp("shards") / "train"
    write_shards(_source(), str(dest), shard_size=6)
    return str(dest.parent)


def _cfg(root: str, *, workers: int = 2, seed: int = 0, **over: Any) -> DinoConfig:
    return tiny_config(
        **{
            "data.dataset": "shards",
            "data.root": root,
            "data.num_workers": workers,
            "data.shuffle_buffer": 5,
            "train.batch_size": 8,
            "train.seed": seed,
            "model.in_chans": 1,
            "crops.global_size": 8,
            "crops.local_size": 4,
            **over,
        }
    )


def _loader(cfg: DinoConfig, rank: int = 0, world: int = 2) -> ShardLoader:
    loader = build_train_loader(cfg, load_dataset(cfg.data, "train"), rank=rank, world_size=world)
    assert isinstance(loader, ShardLoader)
    return loader


def _ids(loader: ShardLoader, epoch: int, start: int = 0) -> list[list[int]]:
    source = _source()
    out = []
    for ids, images in loader.images(epoch, start):
        assert torch.equal(images, source.images[ids]), "decoded pixels differ from the source"  # type: ignore[index]
        out.append(ids.tolist())
    return out


def test_shards_hold_every_image_and_label_with_random_access(shard_root: str) -> None:
    ds = load_dataset(DataConfig(dataset="shards", root=shard_root), "train")
    assert isinstance(ds, ShardDataset)
    source = _source()
    assert len(ds) == N and [s.count for s in ds.index.shards] == [6] * 6 + [4]
    assert torch.equal(ds.labels, source.labels)
    for i in (0, 5, 6, 39):
        img, label = ds[i]
        assert torch.equal(img, source.images[i]) and label == int(source.labels[i])  # type: ignore[index]
    with tarfile.open(Path(shard_root) / "train" / "shard-000006.tar") as tar:
        names = tar.getnames()
        assert names[:2] == ["000000036.png", "000000036.cls"]
        cls = tar.extractfile("000000037.cls")
        assert cls is not None and cls.read() == b"1"
    assert len(ds.take(slice(0, 10), "[:10]")) == 10


def test_every_image_once_per_epoch_across_two_ranks_and_two_workers(shard_root: str) -> None:
    cfg = _cfg(shard_root)
    orders = []
    for epoch in (0, 1):
        ranks = [_ids(_loader(cfg, rank=r), epoch) for r in range(2)]
        assert [len(r) for r in ranks] == [5, 5] and all(len(b) == 4 for r in ranks for b in r)
        seen = [i for r in ranks for batch in r for i in batch]
        assert sorted(seen) == list(range(N)), f"epoch {epoch}: an image missing or repeated"
        orders.append(seen)
    assert orders[0] != orders[1], "each epoch has its own order"


def test_same_seed_same_order_other_seed_other_order(shard_root: str) -> None:
    a = _ids(_loader(_cfg(shard_root)), 0)
    assert _ids(_loader(_cfg(shard_root)), 0) == a
    assert _ids(_loader(_cfg(shard_root, seed=1)), 0) != a


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_gives_the_remaining_batches(shard_root: str, workers: int) -> None:
    loader = _loader(_cfg(shard_root, workers=workers))
    full = _ids(loader, 3)
    for k in (1, 2, 3, 4, 5):
        assert _ids(loader, 3, k) == full[k:], f"resume at batch {k}"


def test_orders_are_pure_functions() -> None:
    a = buffer_order(50, 7, np.random.default_rng(3))
    assert sorted(a.tolist()) == list(range(50))
    assert np.array_equal(a, buffer_order(50, 7, np.random.default_rng(3)))
    assert all(a[e] <= e + 6 for e in range(50)), "a buffer of 7 emits nothing further ahead"
    assert round_robin([3, 2]) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]


@pytest.mark.parametrize("pipeline", ["per_image", "batched"])
def test_both_crop_pipelines_yield_every_batch(shard_root: str, pipeline: str) -> None:
    cfg = _cfg(shard_root, **{"crops.pipeline": pipeline})
    loader = _loader(cfg)
    batches = list(loader.epoch(0))
    assert len(batches) == len(loader) == 5
    for crops in batches:
        assert [tuple(c.shape) for c in crops] == [(4, 1, 8, 8)] * 2 + [(4, 1, 4, 4)] * 2
    again = list(_loader(cfg).epoch(0, 2))
    for a, b in zip(batches[2:], again, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"data\.root"):
        load_dataset(DataConfig(dataset="shards"), "train")
    with pytest.raises(DataNotFoundError, match="dino data shard"):
        load_dataset(DataConfig(dataset="shards", root=str(tmp_path)), "train")


def test_training_on_s3_shards_resumes_mid_epoch_exactly(
    s3_server: S3Server, tmp_path: Path
) -> None:
    synthetic = tiny_config()
    root = s3_server.url("datasets", "synthetic")
    write_shards(load_dataset(synthetic.data, "train"), f"{root}/train", shard_size=10)
    cfg = tiny_config(
        **{
            "data.dataset": "shards",
            "data.root": root,
            "data.num_workers": 2,
            "data.shuffle_buffer": 8,
            "train.checkpoint_every_steps": 2,
        }
    )
    full = train(cfg, str(tmp_path / "full"))
    assert full.status == "SUCCEEDED" and full.step == 8
    with pytest.raises(Crash):
        train(cfg, str(tmp_path / "cut"), [CrashAt(3)])  # last checkpoint: step 2, mid-epoch
    resumed = train(cfg, str(tmp_path / "cut"))
    assert resumed.step == 8
    a = load_checkpoint(full.checkpoint or "")["teacher"]
    b = load_checkpoint(resumed.checkpoint or "")["teacher"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_an_image_folder_is_sharded_with_its_files_and_class_labels(tmp_path: Path) -> None:
    from PIL import Image

    from dino_core.data.image_folder import decode_rgb
    from dino_core.data.shard_writer import shard_source

    src = tmp_path / "folder"
    files = []
    for c, cls in enumerate(("cat", "dog")):
        (src / cls).mkdir(parents=True)
        for i in range(3):
            path = src / cls / f"{i}.{'jpg' if i else 'png'}"
            Image.new("RGB", (10 + i, 12), (40 * c, 20 * i, 90)).save(path)
            files.append(path)
    written = shard_source(str(src), str(tmp_path / "out"), shard_size=4)
    assert list(written) == ["train"] and written["train"].classes == ("cat", "dog")
    ds = load_dataset(DataConfig(dataset="shards", root=str(tmp_path / "out")), "train")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1] and len(ds.index.shards) == 2  # type: ignore[attr-defined]
    for i, path in enumerate(sorted(files)):
        img, _ = ds[i]
        assert torch.equal(img, decode_rgb(path)), path  # the file's own bytes, decoded
    with tarfile.open(tmp_path / "out" / "train" / "shard-000000.tar") as tar:
        assert tar.getnames()[:4] == [
            "000000000.png",
            "000000000.cls",
            "000000001.jpg",
            "000000001.cls",
        ]
    with pytest.raises(ValueError, match=r"crops\.pipeline='per_image'"):
        build_train_loader(
            _cfg(
                str(tmp_path / "out"),
                **{"crops.pipeline": "batched", "train.batch_size": 2, "model.in_chans": 3},
            ),
            ds,
        )
