"""The teacher: an exponential moving average of the student (paper Sec. 3.1, Eq. 2).

``theta_t <- lambda theta_t + (1 - lambda) theta_s`` with lambda following a cosine from 0.996
to 1 (``Schedules.momentum``). Only parameters are averaged, as in the official
``main_dino.py``: buffers (BatchNorm running statistics) are the teacher's own, gathered by its
train-mode forward passes on the global crops, so at evaluation they describe the teacher's
weights rather than the student's. The teacher never receives gradients: its parameters have
``requires_grad=False`` and it runs under ``torch.no_grad``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


def make_teacher(student: nn.Module, architecture: nn.Module | None = None) -> nn.Module:
    """A gradient-free teacher with the student's initial weights (as in the paper).

    ``architecture`` is a freshly built network of the same shape; the official code builds
    the teacher without drop path, so callers pass one built with ``drop_path_rate=0``.
    """
    teacher = copy.deepcopy(student) if architecture is None else architecture
    teacher.load_state_dict(_unwrap(student).state_dict())
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if hasattr(m, "module") and isinstance(m.module, nn.Module) else m


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """One EMA step, fused over all parameters (``torch._foreach``)."""
    t_params = dict(_unwrap(teacher).named_parameters())
    s_params = dict(_unwrap(student).named_parameters())
    if t_params.keys() != s_params.keys():
        raise ValueError("teacher and student parameters differ: they must share one architecture")
    names = list(t_params)
    t = [t_params[n].data for n in names]
    s = [s_params[n].detach().to(t_params[n].dtype) for n in names]
    torch._foreach_mul_(t, momentum)
    torch._foreach_add_(t, s, alpha=1.0 - momentum)
