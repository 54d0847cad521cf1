"""Per-image multi-crop: views, sizes, channels, determinism, the official structure."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from dino_core.config import CropsConfig
from dino_core.data import BatchedMultiCrop, MultiCropTransform, blur_kernel_size
from dino_core.data.seeding import call_seeded, derive_seed


def _crops(**kw: object) -> CropsConfig:
    base: dict[str, object] = dict(global_size=16, local_size=8, local_number=3)
    base.update(kw)
    return CropsConfig.model_validate(base)


@pytest.mark.parametrize(
    ("native", "in_chans", "local_number"),
    [(1, 1, 3), (1, 3, 2), (3, 3, 0), (3, 1, 1)],
)
def test_view_counts_sizes_and_channels(native: int, in_chans: int, local_number: int) -> None:
    crops = _crops(local_number=local_number)
    mean, std = (0.5,) * native, (0.25,) * native
    img = torch.randint(0, 256, (native, 20, 24), dtype=torch.uint8)
    views = MultiCropTransform(crops, mean, std, in_chans)(img)
    assert len(views) == 2 + local_number
    sizes = [16, 16] + [8] * local_number
    for v, s in zip(views, sizes, strict=True):
        assert v.shape == (in_chans, s, s) and v.dtype == torch.float32
        # normalised values of [0,1] pixels lie in [(0-0.5)/0.25, (1-0.5)/0.25]
        assert v.min() >= -2.0 - 1e-5 and v.max() <= 2.0 + 1e-5
    batched = BatchedMultiCrop(crops, mean, std, in_chans)(
        img[None].expand(4, -1, -1, -1), torch.Generator().manual_seed(0)
    )
    assert [tuple(b.shape) for b in batched] == [(4, in_chans, s, s) for s in sizes]


def test_grayscale_input_with_full_jitter_never_crashes() -> None:
    t = MultiCropTransform(
        _crops(color_jitter_p=1.0, grayscale_p=1.0, solarize_p=1.0), (0.3,), (0.3,), 1
    )
    for seed in range(20):
        views = call_seeded(lambda: t(torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8)), seed)
        assert all(torch.isfinite(v).all() for v in views)


def test_seeded_calls_are_reproducible_and_leave_global_rng_alone() -> None:
    t = MultiCropTransform(_crops(), (0.5,) * 3, (0.2,) * 3, 3)
    img = torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = call_seeded(lambda: t(img), derive_seed(2, 0, 1, 5))
    assert torch.equal(torch.get_rng_state(), state)
    b = call_seeded(lambda: t(img), derive_seed(2, 0, 1, 5))
    c = call_seeded(lambda: t(img), derive_seed(2, 0, 1, 6))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert derive_seed(1, 2, 3) != derive_seed(1, 3, 2) and derive_seed(-1, 0) >= 0


def test_seeded_calls_seed_no_cuda_generator() -> None:
    """A per-image seed is for the CPU stream the transforms draw from. ``torch.manual_seed``
    also seeds every CUDA generator (queued while CUDA is not initialised), which on a GPU run
    re-seeded the trainer's CUDA stream (drop path, iBOT masks) with the last image's seed at
    every step, and cost a captured Python stack per image on a CPU run."""

    def cuda_rng() -> object:
        if torch.cuda.is_initialized():  # seeds go to the generators at once
            return [s.tolist() for s in torch.cuda.get_rng_state_all()]
        tracker = torch.cuda._lazy_seed_tracker  # seeds wait for the lazy initialisation
        return (tracker.manual_seed_all_cb, tracker.manual_seed_cb, len(torch.cuda._queued_calls))

    before = cuda_rng()
    call_seeded(lambda: torch.rand(1), derive_seed(2, 0, 1, 5))
    assert cuda_rng() == before


def test_blur_kernel_size_is_odd_and_about_a_tenth() -> None:
    assert [blur_kernel_size(s) for s in (8, 12, 28, 32, 64, 96, 224)] == [3, 3, 3, 3, 7, 11, 23]


def _steps(compose: v2.Compose) -> list[object]:
    return list(compose.transforms)


def test_pipeline_structure_matches_the_official_recipe() -> None:
    crops = CropsConfig()  # paper defaults: 224 / 96, blur 1.0 / 0.1 / 0.5, solarise 0.2
    t = MultiCropTransform(crops, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 3)
    g1, g2, loc = _steps(t.global1), _steps(t.global2), _steps(t.local)
    rrc = g1[0]
    assert isinstance(rrc, v2.RandomResizedCrop)
    assert tuple(rrc.size) == (224, 224) and tuple(rrc.scale) == (0.4, 1.0)
    assert rrc.interpolation == v2.InterpolationMode.BICUBIC and rrc.antialias
    assert isinstance(loc[0], v2.RandomResizedCrop) and tuple(loc[0].size) == (96, 96)
    assert tuple(loc[0].scale) == (0.05, 0.4)
    assert isinstance(g1[1], v2.RandomHorizontalFlip) and g1[1].p == 0.5
    jitter = g1[2]
    assert isinstance(jitter, v2.RandomApply) and jitter.p == 0.8
    cj = jitter.transforms[0]
    assert isinstance(cj, v2.ColorJitter)
    assert cj.brightness == (0.6, 1.4) and cj.contrast == (0.6, 1.4)
    assert cj.saturation == (0.8, 1.2) and cj.hue == (-0.1, 0.1)
    assert isinstance(g1[3], v2.RandomGrayscale) and g1[3].p == 0.2
    assert isinstance(g1[4], v2.GaussianBlur) and g1[4].kernel_size == (23, 23)  # p = 1.0
    assert isinstance(g2[4], v2.RandomApply) and g2[4].p == 0.1
    assert isinstance(loc[4], v2.RandomApply) and loc[4].p == 0.5
    assert isinstance(g2[5], v2.RandomSolarize) and g2[5].p == 0.2 and g2[5].threshold == 128
    for steps in (g1, loc):
        assert not any(isinstance(s, v2.RandomSolarize) for s in steps)
    assert isinstance(g1[-1], v2.Normalize) and tuple(g1[-1].mean) == (0.485, 0.456, 0.406)
