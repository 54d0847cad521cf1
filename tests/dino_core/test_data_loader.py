"""Train loader: epoch length, permutations, exact resume, rank shares, pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from dino_core.config import DataConfig, DinoConfig, build_config
from dino_core.data import ImageDataset, build_train_loader, epoch_permutation, load_dataset


def _cfg(
    pipeline: str = "per_image", batch: int = 8, workers: int = 0, in_chans: int = 1
) -> DinoConfig:
    return build_config(
        {
            "model": {"arch": "vit_custom", "patch_size": 4, "in_chans": in_chans},
            "crops": {"global_size": 16, "local_size": 8, "local_number": 2, "pipeline": pipeline},
            "data": {"dataset": "synthetic", "num_workers": workers},  # in memory, like _data()
            "train": {"batch_size": batch, "epochs": 2, "seed": 5},
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
        }
    )


def _data(n: int = 42) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 20, 20), generator=g, dtype=torch.uint8)
    # pixel (0, 0) of image i holds i, so a crop's source can be traced in tests
    return ImageDataset(
        name="toy",
        images=images,
        labels=torch.arange(n) % 3,
        num_classes=3,
        in_chans=1,
        mean=(0.5,),
        std=(0.25,),
    )


def _same(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(torch.equal(p, q) for p, q in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def test_permutations_are_pure_and_cover_the_data() -> None:
    p0, p0b, p1 = (
        epoch_permutation(5, 0, 42),
        epoch_permutation(5, 0, 42),
        epoch_permutation(5, 1, 42),
    )
    assert torch.equal(p0, p0b) and not torch.equal(p0, p1)
    assert torch.equal(p0.sort().values, torch.arange(42))
    assert not torch.equal(p0, epoch_permutation(6, 0, 42))


@pytest.mark.parametrize("pipeline", ["per_image", "batched"])
def test_len_shapes_resume_and_global_rng(pipeline: str) -> None:
    loader = build_train_loader(_cfg(pipeline, in_chans=3), _data())
    assert len(loader) == 5  # 42 // 8, last partial batch dropped
    torch.manual_seed(0)
    state = torch.get_rng_state()
    full = list(loader.epoch(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert len(full) == 5
    assert [tuple(c.shape) for c in full[0]] == [(8, 3, 16, 16)] * 2 + [(8, 3, 8, 8)] * 2
    torch.manual_seed(999)  # the global RNG has no say in the crops
    resumed = list(loader.epoch(1, start_batch=3))
    assert _same(resumed, full[3:])
    assert list(loader.epoch(1, start_batch=5)) == []
    assert not torch.equal(next(iter(loader.epoch(0)))[0], full[0][0])
    with pytest.raises(ValueError, match="start_batch"):
        next(loader.epoch(1, start_batch=6))


@pytest.mark.parametrize("pipeline", ["per_image", "batched"])
def test_two_ranks_see_exactly_one_global_batch(pipeline: str) -> None:
    cfg, data = _cfg(pipeline), _data()
    one = build_train_loader(cfg, data)
    ranks = [build_train_loader(cfg, data, rank=r, world_size=2) for r in range(2)]
    for b in range(len(one)):
        shares = [ld.rank_indices(0, b) for ld in ranks]
        assert shares[0].shape == (4,)
        assert torch.equal(torch.cat(shares), one.rank_indices(0, b))
    assert len(ranks[0]) == len(one)
    if pipeline == "per_image":  # per-sample seeds: the union is bit-identical
        single = list(one.epoch(0))
        split = [list(ld.epoch(0)) for ld in ranks]
        for b in range(len(one)):
            for v in range(4):
                assert torch.equal(torch.cat([split[0][b][v], split[1][b][v]]), single[b][v])


def test_batched_crops_come_from_the_batch_images() -> None:
    """With a constant image per sample, each batched crop must carry its source's value."""
    n = 16
    images = torch.arange(n, dtype=torch.uint8).mul(15).view(n, 1, 1, 1).expand(n, 1, 20, 20)
    data = ImageDataset(
        name="const",
        images=images.contiguous(),
        labels=torch.zeros(n),
        num_classes=0,
        in_chans=1,
        mean=(0.0,),
        std=(1.0,),
    )
    cfg = build_config(
        {
            "model": {"arch": "vit_custom", "patch_size": 4, "in_chans": 1},
            "crops": {
                "global_size": 16,
                "local_size": 8,
                "local_number": 1,
                "pipeline": "batched",
                "color_jitter_p": 0.0,
                "solarize_p": 0.0,
            },
            "data": {"dataset": "synthetic"},  # in memory, like the images below
            "train": {"batch_size": 8, "epochs": 1},
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
        }
    )
    loader = build_train_loader(cfg, data)
    for b, crops in enumerate(loader.epoch(0)):
        idx = loader.rank_indices(0, b)
        for view in crops:
            torch.testing.assert_close(view[:, 0, 3, 3], idx.float() * 15 / 255, atol=1e-5, rtol=0)


def test_worker_processes_give_the_same_crops() -> None:
    data = _data(24)
    a = list(build_train_loader(_cfg(workers=0), data).epoch(0))
    b = list(build_train_loader(_cfg(workers=1), data).epoch(0))
    assert _same(a, b)


def test_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"train\.batch_size=8 is not divisible by the 3"):
        build_train_loader(_cfg(), _data(), rank=0, world_size=3)
    with pytest.raises(ValueError, match=r"fewer than train\.batch_size=64"):
        build_train_loader(_cfg(batch=64), _data())
    for i in range(3):
        Image.new("RGB", (20, 20), (i, i, i)).save(tmp_path / f"{i}.png")
    lazy = load_dataset(DataConfig(dataset="image_folder", root=str(tmp_path)), "train")
    with pytest.raises(ValueError, match=r"crops\.pipeline='batched'.*image_folder"):
        build_train_loader(_cfg("batched", batch=2), lazy)
    per_image = build_train_loader(_cfg(batch=2, in_chans=3), lazy)
    first = next(per_image.epoch(0))
    assert first[0].shape == (2, 3, 16, 16)


@pytest.mark.parametrize("pipeline", ["per_image", "batched"])
def test_fixed_size_epochs_walk_the_passes_back_to_back(pipeline: str) -> None:
    """train.epoch_images (DINOv2's fixed epoch): schedule step g is batch g mod 5 of pass
    g div 5, whatever epoch it falls in, and a mid-epoch start resumes exactly."""
    plain = build_train_loader(_cfg(pipeline), _data())  # 5 batches per pass
    passes = [list(plain.epoch(p)) for p in range(3)]
    stream = [b for p in passes for b in p]
    for length in (3, 5, 7):
        cfg = build_config(_cfg(pipeline).model_dump(), {"train.epoch_images": 8 * length + 7})
        loader = build_train_loader(cfg, _data())
        assert len(loader) == length
        for e in range(2):
            got = list(loader.epoch(e))
            assert _same(got, stream[e * length : (e + 1) * length]), (length, e)
            assert _same(list(loader.epoch(e, start_batch=2)), got[2:]), (length, e)
        assert list(loader.epoch(1, start_batch=length)) == []
        with pytest.raises(ValueError, match="start_batch"):
            next(loader.epoch(0, start_batch=length + 1))


def test_an_epoch_smaller_than_a_batch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"train.epoch_images=63 is smaller than one batch"):
        build_config({"train": {"epoch_images": 63, "batch_size": 64}})
