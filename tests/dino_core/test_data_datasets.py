"""Data sets: (Fashion-)MNIST search and errors, splits, synthetic, image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dino_core.config import DataConfig
from dino_core.data import DataNotFoundError, adapt_channels, adapt_stats, load_dataset
from dino_core.data import paths as data_paths
from dino_core.data.base import parse_split
from dino_core.data.idx import write_idx
from dino_core.data.synthetic import SPLIT_SEEDS, make_synthetic, render_shape

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No downloads, no $DINO_DATA_DIR and no system data sets unless a test sets them."""
    monkeypatch.setenv("DINO_DATA_DOWNLOAD", "0")
    monkeypatch.delenv("DINO_DATA_DIR", raising=False)
    monkeypatch.setattr(data_paths, "SYSTEM_DATASETS", tmp_path / "no-system-datasets")


def _write_mnist(directory: Path, split: str, n: int, seed: int = 0) -> np.ndarray:
    prefix = "train" if split == "train" else "t10k"
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return images


# ---- MNIST-like loading -----------------------------------------------------------------
def test_fashion_mnist_from_root_with_slices_and_limit(tmp_path: Path) -> None:
    images = _write_mnist(tmp_path, "test", 30)
    cfg = DataConfig(dataset="fashion_mnist", root=str(tmp_path))
    ds = load_dataset(cfg, "test")
    assert len(ds) == 30 and ds.in_chans == 1 and ds.num_classes == 10
    assert ds.images is not None and ds.images.shape == (30, 1, 28, 28)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
    assert ds.labels.tolist() == [i % 10 for i in range(30)]
    img, label = ds[13]
    assert img.shape == (1, 28, 28) and img.dtype == torch.uint8 and label == 3
    head, tail = load_dataset(cfg, "test[:20]"), load_dataset(cfg, "test[20:]")
    assert len(head) == 20 and len(tail) == 10
    assert head.images is not None and tail.images is not None
    assert torch.equal(torch.cat([head.images, tail.images]), ds.images)
    limited = load_dataset(
        DataConfig(dataset="fashion_mnist", root=str(tmp_path), limit=7), "test[5:]"
    )
    assert limited.labels.tolist() == [5, 6, 7, 8, 9, 0, 1]


def test_mnist_like_object_masks_are_thresholded_pixels(tmp_path: Path) -> None:
    images = _write_mnist(tmp_path, "test", 12)
    images[0, :2, :3] = [[0, 25, 26], [255, 1, 200]]  # both sides of the 10% threshold
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    ds = load_dataset(DataConfig(dataset="fashion_mnist", root=str(tmp_path)), "test[:5]")
    assert ds.masks is not None and ds.masks.shape == (5, 28, 28) and ds.masks.dtype == torch.bool
    assert ds.masks[0, :2, :3].tolist() == [[False, False, True], [True, False, True]]
    assert torch.equal(ds.masks, torch.from_numpy(images[:5] >= 26))


def test_data_dir_env_subfolder_is_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_mnist(tmp_path / "mnist", "train", 12)
    monkeypatch.setenv("DINO_DATA_DIR", str(tmp_path))
    ds = load_dataset(DataConfig(dataset="mnist"), "train")
    assert len(ds) == 12 and ds.name == "mnist:train"


def test_missing_fashion_mnist_lists_every_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DINO_DATA_DIR", str(tmp_path / "env"))
    cfg = DataConfig(dataset="fashion_mnist", root=str(tmp_path / "root"))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(cfg, "train")
    msg = str(info.value)
    for place in (
        tmp_path / "root",
        tmp_path / "env" / "fashion-mnist",
        tmp_path / "env",
        tmp_path / "no-system-datasets" / "fashion-mnist",
    ):
        assert str(place) in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "DINO_DATA_DIR" in msg and "DINO_DATA_DOWNLOAD=0" in msg


def test_mnist_train_with_only_t10k_suggests_a_test_slice(tmp_path: Path) -> None:
    _write_mnist(tmp_path, "test", 10)
    with pytest.raises(DataNotFoundError, match=r'data\.split="test\[:8000\]"'):
        load_dataset(DataConfig(dataset="mnist", root=str(tmp_path)), "train")


def test_unknown_split_and_bad_slice_are_named() -> None:
    with pytest.raises(ValueError, match="no split 'val'"):
        load_dataset(DataConfig(dataset="synthetic", synthetic_size=8), "val")
    with pytest.raises(ValueError, match="malformed"):
        parse_split("test[1:2:3]")
    with pytest.raises(ValueError, match="selects no images"):
        load_dataset(DataConfig(dataset="synthetic", synthetic_size=8), "test[8:]")
    assert parse_split("test[-100:]").rows == slice(-100, None)


def test_cifar10_missing_names_places_and_field(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"data\.dataset='cifar10'") as info:
        load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path)), "train")
    assert str(tmp_path) in str(info.value) and "cifar-10-batches-py" in str(info.value)


def test_shared_mnist_t10k_loads_when_present() -> None:
    if data_paths.find_shared_dir("shared/data/mnist-t10k") is None:
        pytest.skip("the repository's shared/data/mnist-t10k is not next to this checkout")
    ds = load_dataset(DataConfig(dataset="mnist"), "test[8000:]")
    assert len(ds) == 2000 and set(ds.labels.tolist()) == set(range(10))


def test_real_fashion_mnist_files(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            "real Fashion-MNIST not installed at /usr/share/datasets/fashion-mnist "
            "(apt-get install dataset-fashion-mnist); this test checks those files only"
        )
    monkeypatch.setattr(data_paths, "SYSTEM_DATASETS", Path("/usr/share/datasets"))
    ds = load_dataset(DataConfig(dataset="fashion_mnist"), "test")
    assert len(ds) == 10_000 and ds.images is not None
    assert torch.bincount(ds.labels).tolist() == [1000] * 10


# ---- channels -----------------------------------------------------------------------------
def test_adapt_channels_and_stats() -> None:
    g = torch.tensor([[[10, 200]]], dtype=torch.uint8)
    assert torch.equal(adapt_channels(g, 3), g.repeat(3, 1, 1))
    assert adapt_channels(g, 1) is g
    rgb = torch.tensor([[[100]], [[200]], [[50]]], dtype=torch.uint8)
    # 0.2989*100 + 0.587*200 + 0.114*50 = 152.99 -> 153
    assert adapt_channels(rgb, 1).tolist() == [[[153]]]
    assert adapt_channels(rgb.float() / 255, 1).item() == pytest.approx(152.99 / 255, abs=1e-6)
    assert adapt_stats((0.3,), (0.2,), 3) == ((0.3,) * 3, (0.2,) * 3)
    m, s = adapt_stats((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), 1)
    assert m[0] == pytest.approx(0.2989) and s[0] == pytest.approx(0.5 * 0.9999)
    with pytest.raises(ValueError, match=r"model\.in_chans=4"):
        adapt_channels(g, 4)


# ---- synthetic ------------------------------------------------------------------------------
def test_render_square_is_exact() -> None:
    # square half-side 0.8 r = 4 px around (8, 6): pixel centres x+0.5 in [4, 12], y+0.5 in [2, 10]
    mask = render_shape("square", 16, cx=8.0, cy=6.0, r=5.0)
    expected = np.zeros((16, 16), dtype=bool)
    expected[2:10, 4:12] = True
    assert np.array_equal(mask, expected)
    # unit circle at a pixel centre: the 4 neighbours at distance exactly 1 are inside,
    # the diagonals (sqrt 2) are not
    circle = render_shape("circle", 9, cx=4.5, cy=4.5, r=1.0)
    assert np.argwhere(circle).tolist() == [[3, 4], [4, 3], [4, 4], [4, 5], [5, 4]]


def test_synthetic_is_deterministic_balanced_and_masks_match_pixels() -> None:
    cfg = DataConfig(
        dataset="synthetic", synthetic_size=64, synthetic_image_size=24, synthetic_classes=4
    )
    a, b = load_dataset(cfg, "train"), load_dataset(cfg, "train")
    assert a.images is not None and b.images is not None and a.masks is not None
    assert a.backgrounds is not None
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    test = load_dataset(cfg, "test")
    assert test.images is not None and not torch.equal(a.images, test.images)
    assert torch.bincount(a.labels).tolist() == [16] * 4
    assert int(a.backgrounds.sum()) == 32 and a.images.shape == (64, 3, 24, 24)
    assert a.in_chans == 3 and len(a.mean) == 3 and a.num_classes == 4
    for i in range(64):
        img, m = a.images[i], a.masks[i]
        assert m.any() and not m.all()
        obj = img[:, m]  # every object pixel has one colour
        assert torch.equal(obj, obj[:, :1].expand_as(obj))
        bg = img[:, ~m].int()
        # background differs from the object colour by >= 20 in every channel
        assert (bg - obj[:, :1].int()).abs().min() >= 20
        if int(a.backgrounds[i]) == 0:
            assert torch.equal(bg, bg[:, :1].expand_as(bg))
        else:
            assert bg.unique(dim=1).shape[1] > 1


def test_synthetic_mask_equals_render_shape_of_its_parameters() -> None:
    _, labels, masks, _ = make_synthetic(16, 20, 8, SPLIT_SEEDS["test"])
    rng = np.random.default_rng(SPLIT_SEEDS["test"])  # replay the documented draw order
    rng.permutation(16), rng.permutation(16)
    r = rng.uniform(0.15, 0.3, 16) * 20
    cx = r + rng.uniform(0.0, 1.0, 16) * (20 - 2 * r)
    cy = r + rng.uniform(0.0, 1.0, 16) * (20 - 2 * r)
    from dino_core.data.synthetic import SHAPES

    for i in range(16):
        ref = render_shape(SHAPES[int(labels[i])], 20, cx[i], cy[i], r[i])
        assert np.array_equal(masks[i].numpy(), ref)


@pytest.mark.parametrize("backgrounds", ["plain", "textured"])
def test_synthetic_options_change_colours_and_backgrounds_but_not_the_shapes(
    backgrounds: str,
) -> None:
    from dino_core.data.synthetic import FIXED_BACKGROUND, FIXED_OBJECT

    _, labels, masks, kinds = make_synthetic(32, 20, 4, SPLIT_SEEDS["train"])
    f_images, f_labels, f_masks, f_kinds = make_synthetic(
        32, 20, 4, SPLIT_SEEDS["train"], backgrounds=backgrounds, colors="fixed"
    )
    # same draws: labels and masks (shape, size, position) are those of the default
    assert torch.equal(labels, f_labels) and torch.equal(masks, f_masks)
    assert int(kinds.sum()) == 16  # default: half textured
    assert f_kinds.tolist() == [int(backgrounds == "textured")] * 32
    obj = f_images.permute(1, 0, 2, 3)[:, f_masks]  # [3, object pixels of all images]
    assert obj.unique(dim=1).tolist() == [[c] for c in FIXED_OBJECT]
    bg = f_images.permute(1, 0, 2, 3)[:, ~f_masks]
    if backgrounds == "plain":
        assert bg.unique(dim=1).tolist() == [[c] for c in FIXED_BACKGROUND]
    else:  # a texture around the fixed base on every image
        for i in range(32):
            assert f_images[i][:, ~f_masks[i]].unique(dim=1).shape[1] > 1
    # the config reaches the generator, and a bad value names the field
    cfg = DataConfig(
        dataset="synthetic", synthetic_size=32, synthetic_image_size=20,
        synthetic_backgrounds=backgrounds, synthetic_colors="fixed",
    )  # fmt: skip
    loaded = load_dataset(cfg, "train")
    assert loaded.images is not None and torch.equal(loaded.images, f_images)
    with pytest.raises(ValueError, match="synthetic_colors"):
        make_synthetic(8, 20, 4, 0, colors="pastel")
    with pytest.raises(ValueError, match="synthetic_backgrounds"):
        make_synthetic(8, 20, 4, 0, backgrounds="sky")


# ---- image folder ---------------------------------------------------------------------------
def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (10, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_with_class_folders(tmp_path: Path) -> None:
    _png(tmp_path / "dog" / "a.png", (255, 0, 0))
    _png(tmp_path / "cat" / "deep" / "er" / "b.JPG", (0, 255, 0))
    _png(tmp_path / "cat" / "c.png", (0, 0, 255), size=(7, 9))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    _png(tmp_path / ".hidden" / "d.png", (1, 1, 1))
    ds = load_dataset(DataConfig(dataset="image_folder", root=str(tmp_path)), "train")
    assert ds.images is None and ds.num_classes == 2 and len(ds) == 3
    # sorted paths: cat/c.png, cat/deep/er/b.JPG, dog/a.png; classes sorted: cat=0, dog=1
    assert ds.labels.tolist() == [0, 0, 1]
    img, label = ds[0]
    assert img.shape == (3, 9, 7) and img.dtype == torch.uint8 and label == 0
    assert img[:, 0, 0].tolist() == [0, 0, 255]
    assert ds[2][0][:, 3, 3].tolist() == [255, 0, 0]
    assert len(load_dataset(DataConfig(dataset="image_folder", root=str(tmp_path)), "x[1:]")) == 2


def test_image_folder_without_classes_and_split_subfolder(tmp_path: Path) -> None:
    _png(tmp_path / "train" / "a.png", (9, 9, 9))
    _png(tmp_path / "train" / "b.png", (9, 9, 9))
    _png(tmp_path / "train" / "sub" / "c.png", (9, 9, 9))
    _png(tmp_path / "val" / "v.png", (9, 9, 9))
    cfg = DataConfig(dataset="image_folder", root=str(tmp_path))
    train = load_dataset(cfg, "train")
    assert len(train) == 3 and train.labels.tolist() == [-1, -1, -1] and train.num_classes == 0
    assert len(load_dataset(cfg, "val")) == 1


def test_image_folder_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"data\.root"):
        load_dataset(DataConfig(dataset="image_folder"), "train")
    with pytest.raises(DataNotFoundError, match="missing"):
        load_dataset(DataConfig(dataset="image_folder", root=str(tmp_path / "missing")), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"no images under .*empty"):
        load_dataset(DataConfig(dataset="image_folder", root=str(tmp_path / "empty")), "train")
