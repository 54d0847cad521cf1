"""BatchNorm statistics over the whole global batch on multi-GPU runs.

The official code (``main_dino.py``) converts the student's and the teacher's BatchNorm layers
(the ResNets', and here also a ViT's convolutional stem and a head with ``head.use_bn``) to
``SyncBatchNorm`` when the model has any, so a step normalises with the statistics of the
global batch, not of one GPU's share. PyTorch's ``SyncBatchNorm`` runs on GPUs only; CPU
process groups (gloo) keep per-rank statistics.
"""

from __future__ import annotations

from typing import TypeVar, cast

import torch.nn as nn

from dino_core.runtime import Runtime

M = TypeVar("M", bound=nn.Module)


def has_batchnorms(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def sync_batchnorms(model: M, rt: Runtime) -> M:
    """``model`` with SyncBatchNorm layers on a multi-GPU run; otherwise ``model`` itself.

    The conversion swaps the BatchNorm children in place and returns the same module unless
    ``model`` is itself a BatchNorm layer, so the type is kept."""
    if not (rt.distributed and rt.device.type == "cuda" and has_batchnorms(model)):
        return model
    return cast(M, nn.SyncBatchNorm.convert_sync_batchnorm(model))
