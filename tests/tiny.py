"""The tiny DINO config every test suite trains: a 2-block ViT of width 32 on generated shapes.

One definition; each suite picks its own warm-up, dataset size and ``train`` section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# 2 blocks of width 32, patch 4, no drop path: a step takes milliseconds on a CPU core.
TINY_VIT: dict[str, Any] = {
    "arch": "vit_custom",
    "patch_size": 4,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "drop_path_rate": 0.0,
}


def tiny_vit(**changes: Any) -> dict[str, Any]:
    """A copy of :data:`TINY_VIT` (a ``model`` section) with ``changes``; a test that needs
    another depth or head count names it here, with its reason."""
    return {**TINY_VIT, **changes}


def timm_vit_kwargs() -> dict[str, Any]:
    """:data:`TINY_VIT` as keyword arguments of timm's ``VisionTransformer``."""
    return {k: v for k, v in TINY_VIT.items() if k != "arch"}


def tiny_backbone(img_size: int = 16, seed: int = 0, **changes: Any) -> torch.nn.Module:
    """The :func:`tiny_vit` backbone in eval mode, its weights drawn after ``manual_seed(seed)``."""
    import torch

    from dino_core.config import ModelConfig
    from dino_core.models import build_backbone

    torch.manual_seed(seed)
    return build_backbone(ModelConfig(**tiny_vit(**changes)), img_size)[0].eval()


def tiny_dict(
    *,
    warmup_epochs: int,
    synthetic_size: int,
    train: dict[str, Any],
    pipeline: str = "batched",
) -> dict[str, Any]:
    """A fresh config mapping: TINY_VIT, K = 64, 16 px globals + 2 x 8 px locals on 32 px
    synthetic images, ``warmup_epochs`` of lr and teacher-temperature warm-up, CPU, 1 thread.

    The crops come from the batched pipeline unless a test asks for ``per_image``: at this
    size torchvision's per-image transforms cost ~3x the whole training step (measured: 60
    steps in 14 s per image, 4.5 s batched), and both pipelines have tests of their own."""
    return {
        "model": dict(TINY_VIT),
        "head": {"out_dim": 64, "hidden_dim": 64, "bottleneck_dim": 32},
        "crops": {"global_size": 16, "local_size": 8, "local_number": 2, "pipeline": pipeline},
        "loss": {"warmup_teacher_temp_epochs": warmup_epochs},
        "optim": {"warmup_epochs": warmup_epochs},
        "data": {
            "dataset": "synthetic",
            "synthetic_size": synthetic_size,
            "synthetic_image_size": 32,
        },
        "train": {"batch_size": 16, "device": "cpu", "threads": 1, **train},
    }
