"""The run-time data-root check (``dino_core.data.roots``): inside a confinement every path
a loader opens is resolved (symlinks followed) and must lie inside the allowed roots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dino_core.config import DataConfig
from dino_core.data import load_dataset
from dino_core.data import paths as data_paths
from dino_core.data.idx import write_idx
from dino_core.data.roots import DataRootError, allowed_roots, confined_to


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DINO_DATA_DOWNLOAD", "0")
    monkeypatch.delenv("DINO_DATA_DIR", raising=False)
    monkeypatch.setattr(data_paths, "SYSTEM_DATASETS", tmp_path / "no-system-datasets")


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / f"{i}.png")
    return folder


def _folder(root: Path) -> DataConfig:
    return DataConfig(dataset="image_folder", root=str(root))


def test_a_root_that_became_a_symlink_out_of_the_allowed_roots_is_refused(
    tmp_path: Path,
) -> None:
    allowed, outside = tmp_path / "allowed", _images(tmp_path / "secret")
    link = allowed / "ds"
    _images(link)  # what was there at submit time
    assert len(load_dataset(_folder(link), "train")) == 3
    for f in link.iterdir():
        f.unlink()
    link.rmdir()
    link.symlink_to(outside)  # swapped afterwards
    assert len(load_dataset(_folder(link), "train")) == 3  # unconfined: the library follows it
    with confined_to([str(allowed)]), pytest.raises(DataRootError) as err:
        load_dataset(_folder(link), "train")
    assert str(link) in str(err.value) and str(outside) in str(err.value)
    assert "outside the allowed data roots" in str(err.value)
    assert allowed_roots() is None  # the confinement ends with its block


def test_the_resolved_root_is_opened_and_must_exist(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    real = _images(allowed / "real")
    (allowed / "alias").symlink_to(real)  # a symlink inside the roots is fine
    with confined_to([str(allowed)]):
        ds = load_dataset(_folder(allowed / "alias"), "train")
        assert Path(ds.paths[0]).parent == real  # type: ignore[attr-defined]
        with pytest.raises(DataRootError, match="not a directory"):
            load_dataset(_folder(allowed / "gone"), "train")


def test_symlinks_below_the_root_must_stay_inside(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    ds = _images(allowed / "ds", n=2)
    _images(outside, n=1)
    (ds / "stolen.png").symlink_to(outside / "0.png")
    with confined_to([str(allowed)]), pytest.raises(DataRootError, match="an image file"):
        load_dataset(_folder(ds), "train")
    # a loader's subdirectory (<root>/fashion-mnist) pointing out is refused as well
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    (outside / "mnist").mkdir()
    write_idx(outside / "mnist" / "train-images-idx3-ubyte.gz", images)
    write_idx(outside / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    (allowed / "m").mkdir()
    (allowed / "m" / "fashion-mnist").symlink_to(outside / "mnist")
    cfg = DataConfig(dataset="fashion_mnist", root=str(allowed / "m"))
    assert len(load_dataset(cfg, "train")) == 4
    with confined_to([str(allowed)]), pytest.raises(DataRootError, match=r"under data\.root"):
        load_dataset(cfg, "train")
