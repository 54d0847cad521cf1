"""Shared tiny configs: seconds-long DINO runs on generated shapes."""

from __future__ import annotations

from typing import Any

import pytest

from dino_core.config import DinoConfig, build_config
from tests.tiny import TINY_VIT

__all__ = ["TINY_VIT", "tiny", "tiny_config"]


def tiny_config(**overrides: Any) -> DinoConfig:
    """A 2-block ViT on 16 px synthetic images, K=64: a step takes milliseconds."""
    data: dict[str, Any] = {
        "model": dict(TINY_VIT),
        "head": {"out_dim": 64, "hidden_dim": 64, "bottleneck_dim": 16},
        "crops": {"global_size": 16, "local_size": 8, "local_number": 2},
        "loss": {"warmup_teacher_temp_epochs": 1},
        "optim": {"warmup_epochs": 1, "lr": 0.001},
        "data": {"dataset": "synthetic", "synthetic_size": 64, "synthetic_image_size": 16},
        "train": {"epochs": 2, "batch_size": 16, "threads": 1, "log_every_steps": 1},
    }
    return build_config(data, overrides)


@pytest.fixture
def tiny() -> DinoConfig:
    return tiny_config()
