"""IDX files: our reader, its errors, and agreement with torchvision's reader."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets.mnist import (
    read_image_file,
    read_label_file,
    read_sn3_pascalvincent_tensor,
)

from dino_core.data import paths as data_paths
from dino_core.data.idx import IdxFormatError, read_idx, write_idx


def _gunzip(src: Path, dst: Path) -> Path:
    with gzip.open(src, "rb") as f, dst.open("wb") as g:
        shutil.copyfileobj(f, g)
    return dst


def test_idx_reader_parses_a_hand_written_file(tmp_path: Path) -> None:
    # magic 0,0,0x08 (uint8), 2 dims; dims 2 and 3 big-endian; then 6 bytes
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    (tmp_path / "a.idx").write_bytes(raw)
    arr = read_idx(tmp_path / "a.idx")
    assert arr.dtype == np.uint8
    assert arr.tolist() == [[1, 2, 3], [4, 5, 255]]


def test_idx_roundtrip_gz_and_multibyte(tmp_path: Path) -> None:
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "x.idx.gz", a)
    b = read_idx(tmp_path / "x.idx.gz")
    assert b.dtype == np.int32 and np.array_equal(a, b)
    f = np.linspace(0, 1, 5, dtype=np.float32)
    write_idx(tmp_path / "f.idx", f)
    assert np.array_equal(read_idx(tmp_path / "f.idx"), f)


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(IdxFormatError, match=r"bad\.idx.*not an IDX"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "short.idx").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(IdxFormatError, match=r"short\.idx"):
        read_idx(tmp_path / "short.idx")


def test_idx_rejects_trailing_bytes_and_broken_gzip(tmp_path: Path) -> None:
    # torchvision's read_image_file/read_label_file skip the size check (strict=False)
    (tmp_path / "long.idx").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 7, 7]))
    with pytest.raises(IdxFormatError, match=r"long\.idx.*\(2,\).*11 bytes"):
        read_idx(tmp_path / "long.idx")
    write_idx(tmp_path / "cut.idx.gz", np.zeros((50, 28, 28), np.uint8))
    data = (tmp_path / "cut.idx.gz").read_bytes()
    (tmp_path / "cut.idx.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IdxFormatError, match=r"cannot read IDX file .*cut\.idx\.gz"):
        read_idx(tmp_path / "cut.idx.gz")
    (tmp_path / "plain.gz").write_bytes(b"not gzip at all")
    with pytest.raises(IdxFormatError, match=r"plain\.gz"):
        read_idx(tmp_path / "plain.gz")


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8),
        (np.arange(13) % 10).astype(np.uint8),
        np.arange(-12, 12, dtype=np.int16).reshape(2, 3, 4),
        np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 70_000,
        np.linspace(-1, 1, 9, dtype=np.float32),
        np.linspace(-1, 1, 6, dtype=np.float64).reshape(2, 3),
    ],
    ids=["images_u8", "labels_u8", "i16", "i32", "f32", "f64"],
)
def test_reader_agrees_with_torchvision(tmp_path: Path, array: np.ndarray) -> None:
    """The same bytes read by torchvision's reference reader (uncompressed: all it reads)."""
    path = tmp_path / "x-idx"
    write_idx(path, array)
    ours = read_idx(path)
    theirs = read_sn3_pascalvincent_tensor(str(path))
    assert ours.shape == tuple(theirs.shape) and ours.dtype == array.dtype
    assert torch.equal(torch.from_numpy(ours), theirs)


def test_shipped_mnist_t10k_matches_torchvision(tmp_path: Path) -> None:
    shared = data_paths.find_shared_dir("shared/data/mnist-t10k")
    if shared is None:
        pytest.skip("the repository's shared/data/mnist-t10k is not next to this checkout")
    images = read_idx(shared / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(np.unique(labels).tolist()) == set(range(10))
    tv_images = read_image_file(str(_gunzip(shared / "t10k-images-idx3-ubyte.gz", tmp_path / "i")))
    tv_labels = read_label_file(str(_gunzip(shared / "t10k-labels-idx1-ubyte.gz", tmp_path / "l")))
    assert torch.equal(torch.from_numpy(images), tv_images)
    assert torch.equal(torch.from_numpy(labels).long(), tv_labels)


def test_torchvision_reader_still_cannot_open_gz(tmp_path: Path) -> None:
    """Why dino_core keeps its own reader (see dino_core/data/idx.py): the data sets ship as
    ``.gz`` and torchvision's reader takes only uncompressed files. When this fails,
    torchvision reads ``.gz`` itself and read_idx should become a call to it."""
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(AssertionError):
        read_image_file(str(tmp_path / "t10k-images-idx3-ubyte.gz"))
