"""Linear probe on frozen features (official eval_linear recipe)."""

from __future__ import annotations

import math

import pytest
import torch

from dino_core.eval.linear import LinearProbeConfig, cosine_lr, train_linear_probe


def separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes split by the signs of two coordinates (a margin of 0.5), plus noise dims."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    x[:, :2] = x[:, :2].sign() * (0.5 + x[:, :2].abs())
    y = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
    return x, y


def test_reaches_full_accuracy_on_separable_features() -> None:
    xtr, ytr = separable(400, 0)
    xte, yte = separable(200, 1)
    res = train_linear_probe(
        xtr, ytr, xte, yte, config=LinearProbeConfig(epochs=10, batch_size=64, lr=0.5)
    )
    assert res.best_top1 >= 99.0
    assert res.final_top1 >= 99.0
    assert res.final_top5 == 100.0
    assert res.effective_lr == pytest.approx(0.5 * 64 / 256)
    assert res.n_train == 400 and res.n_test == 200
    assert [e for e, _ in res.history] == list(range(1, 11))
    assert res.best_top1 == max(t for _, t in res.history)


def test_deterministic_by_seed_and_global_rng_untouched() -> None:
    xtr, ytr = separable(100, 2)
    xte, yte = separable(50, 3)
    cfg = LinearProbeConfig(epochs=3, batch_size=16, lr=0.01, seed=7)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = train_linear_probe(xtr, ytr, xte, yte, config=cfg)
    assert torch.equal(before, torch.get_rng_state())
    b = train_linear_probe(xtr, ytr, xte, yte, config=cfg)
    assert a.history == b.history and a.final_top1 == b.final_top1


def test_cosine_schedule_values() -> None:
    assert cosine_lr(1.0, 0, 10) == 1.0
    assert cosine_lr(1.0, 5, 10) == pytest.approx(0.5)
    assert cosine_lr(2.0, 10, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(1.0, 2, 8) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_unlabelled_rows_are_dropped_and_errors_are_clear() -> None:
    xtr, ytr = separable(40, 4)
    ytr[:10] = -1
    res = train_linear_probe(xtr, ytr, xtr[:5], ytr[10:15], config=LinearProbeConfig(epochs=1))
    assert res.n_train == 30 and res.n_test == 5
    with pytest.raises(ValueError, match="no labelled test"):
        train_linear_probe(xtr, ytr, xtr[:3], torch.full((3,), -1))
    with pytest.raises(ValueError, match="dim"):
        train_linear_probe(xtr, ytr, torch.randn(3, 4), torch.zeros(3, dtype=torch.long))
