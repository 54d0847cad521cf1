"""Optimiser construction and the per-step gradient treatment of the official code.

Two parameter groups: weights are decayed; biases and 1-D parameters (norms) are not
(official ``get_params_groups``). Gradients are clipped *per parameter* to norm 3.0
(official ``clip_gradients``), and the last layer's gradients are dropped while it is frozen
(``freeze_last_layer=1`` epoch).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.optim import Lars

from dino_core.config import OptimConfig


def param_groups(model: nn.Module) -> list[dict[str, object]]:
    """``[regularised, not regularised]``; group 0 receives the weight-decay schedule."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    cfg: OptimConfig, model: nn.Module, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW (paper), SGD or LARS; lr and wd are set every step by the schedules."""
    groups = param_groups(model)
    fused = device.type == "cuda"
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=0.0, fused=fused, foreach=None if fused else True)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=cfg.sgd_momentum, foreach=True)
    return Lars(groups, lr=0.0, momentum=cfg.sgd_momentum)


def set_schedule(opt: torch.optim.Optimizer, lr: float, wd: float) -> None:
    for i, g in enumerate(opt.param_groups):
        g["lr"] = lr
        if i == 0:
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
