"""Tiny request bodies shared by the api tests."""

from __future__ import annotations

import copy
from typing import Any

TINY: dict[str, Any] = {
    "model": {
        "arch": "vit_custom",
        "patch_size": 4,
        "embed_dim": 32,
        "depth": 2,
        "num_heads": 2,
        "drop_path_rate": 0.0,
    },
    "head": {"out_dim": 64, "hidden_dim": 64, "bottleneck_dim": 32},
    "crops": {"global_size": 16, "local_size": 8, "local_number": 2},
    "loss": {"warmup_teacher_temp_epochs": 0},
    "optim": {"warmup_epochs": 0},
    "data": {"dataset": "synthetic", "synthetic_size": 32, "synthetic_image_size": 32},
    "train": {"epochs": 1, "batch_size": 16, "device": "cpu", "threads": 1},
}
AXES = {"loss.teacher_temp": [0.04, 0.07], "crops.local_number": [1, 2]}


def tiny(**sections: dict[str, Any]) -> dict[str, Any]:
    """A copy of :data:`TINY` with ``sections`` merged in (``loss={"teacher_temp": 0.05}``)."""
    cfg = copy.deepcopy(TINY)
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def grid_body(name: str = "g", **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_config": tiny(), "axes": AXES, "evals": ["eval_knn"], **extra}


def fields(problem: dict[str, Any]) -> list[str]:
    """The field paths a problem document names."""
    return [e["field"] for e in problem.get("errors", [])]
