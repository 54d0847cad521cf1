"""Tiny request bodies shared by the api tests."""

from __future__ import annotations

import copy
from typing import Any

from tests.tiny import tiny_dict

# per-image crops, the config's default: the api tests submit what a user who names no
# pipeline gets (image_folder, for one, is refused with the batched pipeline)
TINY: dict[str, Any] = tiny_dict(
    warmup_epochs=0, synthetic_size=32, train={"epochs": 1}, pipeline="per_image"
)
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
