"""Optimiser construction and the per-step gradient treatment of the official code.

Two parameter groups: weights are decayed; biases and 1-D parameters (norms) are not
(official ``get_params_groups``). Gradients are clipped *per parameter* to norm 3.0
(official ``clip_gradients``), and the last layer's gradients are dropped while it is frozen
(``freeze_last_layer=1`` epoch).

DINOv2's per-parameter learning rates (Oquab et al. 2023, arXiv 2304.07193; official
``get_params_groups_with_decay``, ``layerwise_decay: 0.9``, ``patch_embed_lr_mult: 0.2``): in a
ViT of L blocks, block i (0-based) learns at ``rate^(L - i)`` of the scheduled lr, the
embeddings (patch embedding, position embedding, CLS, register and mask tokens) at
``rate^(L + 1)``, the final norm and the heads at 1; the patch embedding's lr is further
multiplied by ``patch_embed_lr_mult``. Parameters with equal multipliers share a group that
carries ``lr_mult`` / ``wd_mult``; with both options at 1 the two DINO v1 groups are kept
exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from timm.optim import Lars

from dino_core.config import ConfigError, OptimConfig

EMBEDDINGS = ("patch_embed", "pos_embed", "cls_token", "reg_token", "mask_token")


def _decayed(name: str, p: nn.Parameter) -> bool:
    return not (name.endswith(".bias") or p.ndim == 1)


def param_groups(model: nn.Module) -> list[dict[str, object]]:
    """``[regularised, not regularised]``; group 0 receives the weight-decay schedule."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if _decayed(name, p) else no_decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_multiplier(
    name: str, n_blocks: int, layerwise_decay: float, patch_embed_mult: float
) -> float:
    """The lr multiplier of parameter ``name`` of a multi-crop ViT (module doc)."""
    parts = name.split(".")
    inner = parts[1:] if parts[0] == "backbone" else parts
    if parts[0] not in ("backbone", "mask_token"):
        return 1.0  # heads
    if inner[0] in EMBEDDINGS:
        layer = 0
    elif inner[0] == "blocks":
        layer = int(inner[1]) + 1
    else:
        layer = n_blocks + 1  # final norm
    mult = layerwise_decay ** (n_blocks + 1 - layer)
    return mult * patch_embed_mult if inner[0] == "patch_embed" else mult


def layerwise_param_groups(
    model: nn.Module, layerwise_decay: float, patch_embed_mult: float
) -> list[dict[str, object]]:
    """Groups of equal (lr multiplier, decayed or not), in order of first appearance."""
    blocks: Any = getattr(getattr(model, "backbone", None), "blocks", None)
    if blocks is None:
        raise ConfigError(
            "optim.layerwise_decay / optim.patch_embed_lr_mult need a ViT backbone with "
            "blocks; set them to 1"
        )
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mult = lr_multiplier(name, len(blocks), layerwise_decay, patch_embed_mult)
        decayed = _decayed(name, p)
        group = groups.setdefault(
            (mult, decayed),
            {"params": [], "lr_mult": mult, "wd_mult": 1.0 if decayed else 0.0},
        )
        group["params"].append(p)
    for g in groups.values():
        g["weight_decay"] = 0.0
    return list(groups.values())


def build_optimizer(
    cfg: OptimConfig, model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW (paper), SGD or LARS; lr and wd are set every step by the schedules."""
    if cfg.layerwise_decay == 1.0 and cfg.patch_embed_lr_mult == 1.0:
        groups = param_groups(model)
    else:
        groups = layerwise_param_groups(model, cfg.layerwise_decay, cfg.patch_embed_lr_mult)
    fused = device.type == "cuda"
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=0.0, fused=fused, foreach=None if fused else True)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=cfg.sgd_momentum, foreach=True)
    return Lars(groups, lr=0.0, momentum=cfg.sgd_momentum)


def set_schedule(opt: torch.optim.Optimizer, lr: float, wd: float) -> None:
    """Scheduled lr and wd: times each group's multipliers, else (DINO v1 groups) wd on 0."""
    for i, g in enumerate(opt.param_groups):
        g["lr"] = lr * g["lr_mult"] if "lr_mult" in g else lr
        if "wd_mult" in g:
            g["weight_decay"] = wd * g["wd_mult"]
        elif i == 0:
            g["weight_decay"] = wd


@torch.no_grad()
def clip_per_parameter(model: nn.Module, clip: float) -> torch.Tensor:
    """Scale each parameter's gradient to norm ≤ ``clip``; returns the pre-clip norms."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    norms = torch._foreach_norm(grads)
    if clip > 0:
        coefs = [torch.clamp(clip / (n + 1e-6), max=1.0) for n in norms]
        torch._foreach_mul_(grads, coefs)
    return torch.stack(norms)


def drop_last_layer_grads(model: nn.Module) -> None:
    """Official ``cancel_gradients_last_layer``: no update of the last layer this step."""
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None
