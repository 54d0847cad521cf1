"""Per-step schedules: endpoints, warm-ups and the linear scaling rule."""

from __future__ import annotations

import math

import pytest

from dino_core.config import build_config
from dino_core.schedules import Schedules, cosine, linear_warmup


def _sched(**over: object) -> Schedules:
    cfg = build_config({"train": {"epochs": 100, "batch_size": 512}}, dict(over))
    return Schedules.from_config(cfg, steps_per_epoch=10)


def test_lr_warmup_then_cosine_to_min_lr() -> None:
    s = _sched()
    base = 0.0005 * 512 / 256  # linear scaling rule, paper
    assert s.base_lr == pytest.approx(base)
    assert s.lr(0) == 0.0
    assert s.lr(s.warmup_steps - 1) == pytest.approx(base)  # linspace includes the end
    assert s.lr(50) == pytest.approx(base * 50 / 99)
    assert s.lr(s.warmup_steps) == pytest.approx(base)
    assert s.lr(s.total_steps - 1) == pytest.approx(1e-6, abs=1e-8 + 1e-3 * base)
    assert s.lr(s.total_steps - 1) < s.lr(500) < s.lr(200)


def test_weight_decay_and_momentum_cosines() -> None:
    s = _sched()
    assert s.weight_decay(0) == pytest.approx(0.04)
    assert s.weight_decay(s.total_steps - 1) == pytest.approx(0.4, abs=1e-5)
    mid = s.total_steps // 2
    assert s.weight_decay(mid) == pytest.approx(0.22, abs=1e-9)
    assert s.momentum(0) == pytest.approx(0.996)
    assert s.momentum(s.total_steps - 1) == pytest.approx(1.0, abs=1e-8)
    assert s.momentum(mid) == pytest.approx(0.998)


def test_teacher_temperature_warmup_per_epoch_then_constant() -> None:
    s = _sched()
    assert s.teacher_temp(0) == pytest.approx(0.04)
    assert s.teacher_temp(9) == pytest.approx(0.04)  # still epoch 0
    assert s.teacher_temp(10) == pytest.approx(0.04 + 0.03 / 29)
    assert s.teacher_temp(29 * 10) == pytest.approx(0.07)
    assert s.teacher_temp(99 * 10) == pytest.approx(0.07)


def test_last_layer_frozen_first_epoch_only() -> None:
    s = _sched()
    assert s.last_layer_frozen(0) and s.last_layer_frozen(9)
    assert not s.last_layer_frozen(10)


def test_pure_functions() -> None:
    assert cosine(0, 10, 1.0, 0.0) == 1.0
    assert cosine(5, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine(100, 10, 1.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))
    assert linear_warmup(0, 5, 0.0, 1.0) == 0.0
    assert linear_warmup(4, 5, 0.0, 1.0) == 1.0
    assert _sched().values(123) == _sched().values(123)
