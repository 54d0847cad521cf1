"""Batched multi-crop: ops equal torchvision's, and the same distributions as the per-image
torchvision pipeline (crop boxes, flip, jitter, grayscale, blur per view, solarise)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from dino_core.config import CropsConfig
from dino_core.data import BatchedMultiCrop, MultiCropTransform
from dino_core.data import batched_ops as ops
from dino_core.data.batched import sample_boxes
from dino_core.data.seeding import call_seeded


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.abs(fa - fb).max())


# ---- ops against torchvision ----------------------------------------------------------------
def test_resized_crop_and_flip_equal_torchvision_bicubic_antialias() -> None:
    torch.manual_seed(0)
    x = torch.rand(5, 3, 40, 37)
    boxes = torch.tensor(
        [[0, 0, 40, 37], [3, 5, 20, 11], [10, 2, 7, 30], [1, 1, 39, 36], [5, 5, 6, 6]]
    )
    flip = torch.tensor([False, True, False, True, True])
    for size in (8, 28, 64):  # down- and up-sampling
        out = ops.resized_crop(x, boxes, size, flip)
        for i in range(5):
            top, left, h, w = boxes[i].tolist()
            ref = TF.resized_crop(
                x[i],
                top,
                left,
                h,
                w,
                [size, size],
                interpolation=TF.InterpolationMode.BICUBIC,
                antialias=True,
            )
            ref = ref.clamp(0, 1)
            if flip[i]:
                ref = TF.horizontal_flip(ref)
            torch.testing.assert_close(out[i], ref, atol=2e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_blur_solarize_ops_equal_torchvision(channels: int) -> None:
    torch.manual_seed(1)
    x = torch.rand(5, channels, 12, 10)
    f = torch.tensor([0.6, 1.0, 1.4, 0.9, 1.2])
    hue = torch.tensor([-0.1, 0.0, 0.05, 0.1, -0.03])
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 1.5])
    pairs = [
        (ops.adjust_brightness(x.clone(), f), lambda i: TF.adjust_brightness(x[i], float(f[i]))),
        (ops.adjust_contrast(x.clone(), f), lambda i: TF.adjust_contrast(x[i], float(f[i]))),
        (ops.adjust_saturation(x.clone(), f), lambda i: TF.adjust_saturation(x[i], float(f[i]))),
        (ops.adjust_hue(x.clone(), hue), lambda i: TF.adjust_hue(x[i], float(hue[i]))),
        (
            ops.gaussian_blur(x, sigma, 5),
            lambda i: TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2),
        ),
        (ops.solarize(x, 0.5), lambda i: TF.solarize(x[i], 0.5)),
    ]
    for out, ref in pairs:
        for i in range(5):
            torch.testing.assert_close(out[i], ref(i), atol=2e-6, rtol=0)
    if channels == 3:
        torch.testing.assert_close(ops.grayscale(x), TF.rgb_to_grayscale(x), atol=1e-6, rtol=0)


# ---- crop boxes: same algorithm as torchvision's RandomResizedCrop ---------------------------
@pytest.mark.parametrize(
    ("height", "width", "scale"),
    [(28, 28, (0.05, 0.4)), (28, 28, (0.4, 1.0)), (20, 40, (0.4, 1.0)), (64, 48, (0.14, 1.0))],
)
def test_crop_boxes_match_torchvision_distribution(
    height: int, width: int, scale: tuple[float, float]
) -> None:
    n = 4000
    rrc = v2.RandomResizedCrop(8, scale=scale)
    img = torch.zeros(1, height, width)
    torch.manual_seed(0)
    ref = np.array(
        [
            [p["top"], p["left"], p["height"], p["width"]]
            for p in (rrc.make_params([img]) for _ in range(n))
        ],
        dtype=np.float64,
    )
    got = sample_boxes(n, height, width, scale, torch.Generator().manual_seed(0)).numpy()
    assert got.dtype == np.int64
    assert (got[:, 2] >= 1).all() and (got[:, 0] + got[:, 2] <= height).all()
    assert (got[:, 3] >= 1).all() and (got[:, 1] + got[:, 3] <= width).all()
    area_ref = ref[:, 2] * ref[:, 3] / (height * width)
    area_got = got[:, 2] * got[:, 3] / (height * width)
    # rounding w and h to whole pixels moves the area by at most half a row and column
    slack = (height + width + 1) / (2 * height * width)
    for area in (area_got, area_ref):
        assert area.min() >= scale[0] - slack and area.max() <= min(1.0, scale[1] + slack)
    assert abs(area_got.mean() - area_ref.mean()) < 0.02
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(area_got, q) - np.quantile(area_ref, q)) < 0.04
    for col in range(4):
        assert _ks(got[:, col].astype(np.float64), ref[:, col]) < 0.05, col
    assert _ks(np.log(got[:, 3] / got[:, 2]), np.log(ref[:, 3] / ref[:, 2])) < 0.05


def test_a_wrong_scale_would_be_caught() -> None:
    """The KS bound above is tight enough to see a modest change of the scale range."""
    a = sample_boxes(4000, 28, 28, (0.05, 0.4), torch.Generator().manual_seed(0)).numpy()
    b = sample_boxes(4000, 28, 28, (0.08, 0.4), torch.Generator().manual_seed(1)).numpy()
    assert _ks((a[:, 2] * a[:, 3]).astype(float), (b[:, 2] * b[:, 3]).astype(float)) > 0.05


# ---- end-to-end rates with identity geometry -------------------------------------------------
def _identity_crops(**kw: object) -> CropsConfig:
    """Scale (1,1) on a square image always gives the full image (torchvision's algorithm)."""
    base: dict[str, object] = dict(
        global_size=16,
        local_size=16,
        local_number=1,
        global_scale=(1.0, 1.0),
        local_scale=(1.0, 1.0),
    )
    base.update(kw)
    return CropsConfig.model_validate(base)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny per-image ops run several times faster on one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _views(crops: CropsConfig, img: torch.Tensor, n: int) -> list[list[np.ndarray]]:
    """Outputs in [0,1] (mean 0, std 1) of n per-image calls and of one batched call of n:
    ``[per_image, batched]``, each a list over views of arrays ``[n, C, s, s]``."""
    c = img.shape[0]
    mean, std = (0.0,) * c, (1.0,) * c
    t = MultiCropTransform(crops, mean, std, c)
    per = [call_seeded(lambda: t(img), s) for s in range(n)]
    batched = BatchedMultiCrop(crops, mean, std, c)(
        img[None].expand(n, -1, -1, -1).contiguous(), torch.Generator().manual_seed(7)
    )
    per_views = [torch.stack([p[v] for p in per]).numpy() for v in range(len(batched))]
    return [per_views, [b.numpy() for b in batched]]


def _both(crops: CropsConfig, img: torch.Tensor, n: int) -> list[np.ndarray]:
    """As :func:`_views` for same-size views, stacked to ``[n, views, C, s, s]``."""
    return [np.stack(views, axis=1) for views in _views(crops, img, n)]


def _checker_halves() -> torch.Tensor:
    """Checker 0/60 on the left half, 150/250 on the right half (1 channel, 16x16)."""
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    odd = (xx + yy) % 2 == 1
    left = torch.where(odd, 60, 0)
    right = torch.where(odd, 250, 150)
    return torch.where(xx < 8, left, right).to(torch.uint8)[None]


def _near(x: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    allowed = np.array(values, dtype=np.float64) / 255.0
    return np.abs(x[..., None] - allowed).min(axis=-1) <= 1.5 / 255


def test_flip_blur_solarize_rates_per_view_in_both_pipelines() -> None:
    crops = _identity_crops(color_jitter_p=0.0, grayscale_p=0.0)
    n = 600
    for out in _both(crops, _checker_halves(), n):
        x = out[:, :, 0]  # [n, 3 views, 16, 16]
        outer_left, outer_right = x[..., :3].mean(axis=(-1, -2)), x[..., 13:].mean(axis=(-1, -2))
        flipped = outer_left > outer_right
        assert abs(flipped.mean() - 0.5) < 0.045  # 1800 views, p 0.5: 3.8 sigma
        solarized = x.max(axis=(-1, -2)) < 0.5
        assert solarized[:, 0].sum() == 0 and solarized[:, 2].sum() == 0
        assert abs(solarized[:, 1].mean() - 0.2) < 0.06
        plain = np.where(
            solarized[..., None, None], _near(x, (0, 60, 105, 5)), _near(x, (0, 60, 150, 250))
        )
        blurred = ~plain.all(axis=(-1, -2))
        # blur is visible when sigma > ~0.3: P = p * (2 - 0.3) / 1.9 = 0.89 p
        g1, g2, loc = blurred.mean(axis=0)
        assert 0.80 < g1 < 0.96 and 0.045 < g2 < 0.135 and 0.36 < loc < 0.53


def test_jitter_and_grayscale_rates_and_value_distribution() -> None:
    img = torch.tensor([200, 120, 40], dtype=torch.uint8).view(3, 1, 1).expand(3, 16, 16)
    img = img.contiguous()
    jit = _identity_crops(grayscale_p=0.0, blur_p=(0.0, 0.0, 0.0), solarize_p=0.0)
    stats = []
    n = 300
    for out in _both(jit, img, n):
        colour = out.reshape(n * 3, 3, -1)[:, :, 0]  # constant images: one pixel says it all
        changed = np.abs(colour - np.array([200, 120, 40]) / 255).max(axis=1) > 1.5 / 255
        assert abs(changed.mean() - 0.8) < 0.05
        stats.append((colour.mean(axis=0), colour.std(axis=0)))
    (m1, s1), (m2, s2) = stats
    assert np.abs(m1 - m2).max() < 0.025 and np.abs(s1 - s2).max() < 0.025
    assert s1.min() > 0.03  # the jitter really spreads the colour
    gray = _identity_crops(color_jitter_p=0.0, blur_p=(0.0, 0.0, 0.0), solarize_p=0.0)
    for out in _both(gray, img, n):
        colour = out.reshape(n * 3, 3, -1)[:, :, 0]
        is_gray = np.ptp(colour, axis=1) < 1.5 / 255
        assert abs(is_gray.mean() - 0.2) < 0.05
        # luma of (200, 120, 40) = 0.2989*200 + 0.587*120 + 0.114*40 = 135.02
        assert np.allclose(colour[is_gray], 135.02 / 255, atol=1.5 / 255)


def test_full_pipelines_agree_on_pixel_statistics_per_view() -> None:
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    img = torch.stack([xx * 10, yy * 10, 255 - (xx + yy) * 5]).clamp(0, 255).to(torch.uint8)
    crops = CropsConfig.model_validate(dict(global_size=16, local_size=8, local_number=2))
    n = 200
    per, bat = _views(crops, img, n)
    for view in range(len(per)):
        for name, fn in (("mean", np.mean), ("std", np.std)):
            a = fn(per[view].reshape(n, -1), axis=1)
            b = fn(bat[view].reshape(n, -1), axis=1)
            se = math.sqrt(a.var() / n + b.var() / n)
            assert abs(a.mean() - b.mean()) < 4 * se + 0.005, (view, name)


def test_batched_is_a_function_of_the_generator_and_keeps_device() -> None:
    crops = CropsConfig.model_validate(dict(global_size=16, local_size=8, local_number=2))
    bm = BatchedMultiCrop(crops, (0.5,), (0.5,), 3, device="cpu")
    x = torch.randint(0, 256, (6, 1, 20, 20), dtype=torch.uint8)
    state = torch.get_rng_state()
    a = bm(x, torch.Generator().manual_seed(3))
    b = bm(x, torch.Generator().manual_seed(3))
    c = bm(x, torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert all(v.device.type == "cpu" and v.shape[1] == 3 for v in a)
    params = bm.sample(500, 20, 20, torch.Generator().manual_seed(0))
    order = params[0].order
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(500, 4))
    first = torch.bincount(order[:, 0], minlength=4).float() / 500
    assert (first - 0.25).abs().max() < 0.08
    with pytest.raises(ValueError, match="uint8"):
        bm(x.float(), torch.Generator())


def test_pixel_noise_is_clipped_gaussian_in_both_pipelines_and_off_by_default() -> None:
    """``crops.noise_sigma``: on a black image every pixel of every view is max(0, N(0, s^2)),
    mean s/sqrt(2 pi) and a fraction 1/2 of zeros, one draw shared by the channels."""
    plain = dict(color_jitter_p=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0, 0.0), solarize_p=0.0)
    black = torch.zeros(3, 16, 16, dtype=torch.uint8)
    for views in _views(_identity_crops(**plain), black, 8):
        assert all(float(np.abs(v).max()) == 0.0 for v in views)  # off: black stays black
    sigma = 0.1
    for views in _views(_identity_crops(**plain, noise_sigma=sigma), black, 64):
        x = np.stack(views)  # [views, n, C, s, s]
        assert np.array_equal(x[:, :, 0], x[:, :, 2])  # the channels share the draw
        assert abs(float(x.mean()) - sigma / math.sqrt(2 * math.pi)) < 0.004
        assert abs(float((x == 0).mean()) - 0.5) < 0.02 and float(x.min()) >= 0.0
