"""Rebuild a trained backbone from a checkpoint file."""

from __future__ import annotations

import torch.nn as nn

from dino_core.checkpoint import load_checkpoint
from dino_core.config import DinoConfig
from dino_core.models.backbone import build_backbone


def load_backbone(path: str, which: str = "teacher") -> tuple[nn.Module, DinoConfig]:
    """Backbone weights of the ``teacher`` (default, as the paper evaluates) or ``student``."""
    if which not in ("teacher", "student"):
        raise ValueError(f"which={which!r}: choose 'teacher' or 'student'")
    ckpt = load_checkpoint(path)
    cfg = DinoConfig.model_validate(ckpt["config"])
    backbone, _ = build_backbone(cfg.model, cfg.crops.global_size)
    prefix = "backbone."
    state = {k[len(prefix) :]: v for k, v in ckpt[which].items() if k.startswith(prefix)}
    state = {k.removeprefix("module."): v for k, v in state.items()}
    backbone.load_state_dict(state)
    backbone.eval()
    return backbone, cfg
