"""Evaluation transform and batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from dino_core.config import DataConfig, DinoConfig, build_config
from dino_core.data import (
    EvalTransform,
    ImageDataset,
    build_eval_transform,
    eval_batches,
    load_dataset,
)


def _cfg(global_size: int, in_chans: int) -> DinoConfig:
    return build_config(
        {
            "model": {"arch": "vit_custom", "patch_size": 4, "in_chans": in_chans},
            "crops": {"global_size": global_size, "local_size": 8},
        }
    )


def _data(n: int, c: int, size: int) -> ImageDataset:
    images = torch.randint(
        0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    return ImageDataset(
        name="toy",
        images=images,
        labels=torch.arange(n),
        num_classes=n,
        in_chans=c,
        mean=(0.5,) * c,
        std=(0.25,) * c,
    )


def test_same_size_is_only_normalised_and_adapted() -> None:
    data = _data(3, 1, 28)
    t = build_eval_transform(data, _cfg(28, 3))
    assert data.images is not None
    out = t(data.images[1])
    expected = ((data.images[1].float() / 255 - 0.5) / 0.25).repeat(3, 1, 1)
    torch.testing.assert_close(out, expected)


def test_larger_images_are_resized_then_centre_cropped() -> None:
    t = EvalTransform(32, (0.0,), (1.0,), 1)
    # 64x48 image, constant 100 with bright 4-px bands at top and bottom: shorter side
    # 48 -> round(32 * 256 / 224) = 37, so 64 -> 49 rows; the centre 32 rows skip the bands
    img = torch.full((1, 64, 48), 100, dtype=torch.uint8)
    img[:, :4], img[:, -4:] = 255, 255
    out = t(img)
    assert out.shape == (1, 32, 32)
    torch.testing.assert_close(out, torch.full_like(out, 100 / 255), atol=1 / 255, rtol=0)
    ref = TF.center_crop(
        TF.resize(img, [37], interpolation=TF.InterpolationMode.BICUBIC, antialias=True), [32, 32]
    )
    assert torch.equal(t.spatial(img), ref)
    assert t.spatial(torch.zeros(1, 40, 90, dtype=torch.uint8)).shape == (1, 32, 32)


def test_smaller_images_are_resized_up() -> None:
    t = EvalTransform(32, (0.5,) * 3, (0.5,) * 3, 3)
    out = t(torch.full((3, 20, 24), 255, dtype=torch.uint8))
    assert out.shape == (3, 32, 32)
    torch.testing.assert_close(out, torch.ones_like(out))


def test_eval_batches_in_memory_and_lazy(tmp_path: Path) -> None:
    data = _data(10, 1, 16)
    t = build_eval_transform(data, _cfg(16, 1))
    batches = list(eval_batches(data, t, 4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(10))
    assert data.images is not None
    torch.testing.assert_close(batches[1][0][0], t(data.images[4]))
    for i, colour in enumerate((10, 200, 60)):
        Image.new("RGB", (40, 30), (colour, colour, colour)).save(tmp_path / f"{i}.png")
    lazy = load_dataset(DataConfig(dataset="image_folder", root=str(tmp_path)), "train")
    lt = build_eval_transform(lazy, _cfg(16, 3))
    ((x, y),) = list(eval_batches(lazy, lt, 8))
    assert x.shape == (3, 3, 16, 16) and y.tolist() == [-1, -1, -1]
    mean = torch.tensor(lazy.mean).view(3, 1, 1)
    std = torch.tensor(lazy.std).view(3, 1, 1)
    torch.testing.assert_close(x[1] * std + mean, torch.full((3, 16, 16), 200 / 255))
    with pytest.raises(ValueError, match="batch_size"):
        next(eval_batches(data, t, 0))
