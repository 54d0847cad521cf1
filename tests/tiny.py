"""The tiny DINO config every test suite trains: a 2-block ViT of width 32 on generated shapes.

One definition; each suite picks its own warm-up, dataset size and ``train`` section.
"""

from __future__ import annotations

from typing import Any

# 2 blocks of width 32, patch 4, no drop path: a step takes milliseconds on a CPU core.
TINY_VIT: dict[str, Any] = {
    "arch": "vit_custom",
    "patch_size": 4,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "drop_path_rate": 0.0,
}


def tiny_dict(*, warmup_epochs: int, synthetic_size: int, train: dict[str, Any]) -> dict[str, Any]:
    """A fresh config mapping: TINY_VIT, K = 64, 16 px globals + 2 x 8 px locals on 32 px
    synthetic images, ``warmup_epochs`` of lr and teacher-temperature warm-up, CPU, 1 thread."""
    return {
        "model": dict(TINY_VIT),
        "head": {"out_dim": 64, "hidden_dim": 64, "bottleneck_dim": 32},
        "crops": {"global_size": 16, "local_size": 8, "local_number": 2},
        "loss": {"warmup_teacher_temp_epochs": warmup_epochs},
        "optim": {"warmup_epochs": warmup_epochs},
        "data": {
            "dataset": "synthetic",
            "synthetic_size": synthetic_size,
            "synthetic_image_size": 32,
        },
        "train": {"batch_size": 16, "device": "cpu", "threads": 1, **train},
    }
