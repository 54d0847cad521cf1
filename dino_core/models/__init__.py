"""Backbones, the DINO head, and the multi-crop wrapper."""

from dino_core.models.backbone import build_backbone, is_vit
from dino_core.models.head import DINOHead
from dino_core.models.loading import load_backbone
from dino_core.models.wrapper import MultiCropWrapper, build_model

__all__ = [
    "DINOHead",
    "MultiCropWrapper",
    "build_backbone",
    "build_model",
    "is_vit",
    "load_backbone",
]
