"""The KoLeo regulariser (DINOv2) against a brute-force nearest-neighbour computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dino_core.koleo import KOLEO_EPS, koleo, koleo_per_crop


def brute_force(features: np.ndarray) -> float:
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    n = len(x)
    total = 0.0
    for i in range(n):
        nearest = min(np.linalg.norm(x[i] - x[j]) for j in range(n) if j != i)
        total += math.log(nearest + KOLEO_EPS)
    return -total / n


def test_equals_brute_force_nearest_neighbours() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(9, 5))
    got = float(koleo(torch.tensor(feats, dtype=torch.float32)))
    assert got == pytest.approx(brute_force(feats), rel=1e-5)


def test_hand_checkable_square() -> None:
    # 4 unit vectors at 90 degrees: every nearest neighbour is sqrt(2) away (scale is ignored)
    feats = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0], [0.0, -0.5]])
    assert float(koleo(feats)) == pytest.approx(-math.log(math.sqrt(2.0)), rel=1e-6)


def test_spreading_lowers_it_and_gradients_push_apart() -> None:
    close = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]], requires_grad=True)
    spread = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    value = koleo(close)
    assert float(value.detach()) > float(koleo(spread))
    value.backward()
    assert close.grad is not None
    # gradient descent moves the two near points apart in their second coordinate
    assert float(close.grad[1, 1]) < 0 < float(close.grad[0, 1])


def test_per_crop_never_pairs_two_views_of_one_image() -> None:
    torch.manual_seed(0)
    a = torch.randn(6, 4)
    both = torch.cat([a, a + 1e-4 * torch.randn(6, 4)])  # crop 2 nearly repeats crop 1
    per_crop = float(koleo_per_crop(both, 2))
    assert per_crop == pytest.approx((float(koleo(a)) + float(koleo(both[6:]))) / 2, rel=1e-6)
    assert float(koleo(both)) > per_crop + 3.0  # across views the neighbour would be ~0 away


def test_one_sample_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 2 samples"):
        koleo(torch.randn(1, 4))
