"""The full training state as a checkpoint payload, and its restoration.

Everything a bitwise-exact resume needs: both networks, optimiser, loss centre, grad scaler,
step, epoch, all RNG states (every rank's, added by :mod:`dino_core.rank_rng`), the collapse
detector's window and the resolved config; with the iBOT loss on, its patch centre.
Augmentation randomness is a pure function of (seed, epoch, index), so no loader state is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from dino_core.checkpoint import rng_state, set_rng_state
from dino_core.config import DinoConfig
from dino_core.ibot import IBOTPatchLoss
from dino_core.loss import DINOLoss
from dino_core.models.attention import load_plan_state, plan_state
from dino_core.monitor import CollapseDetector


def unwrap(m: nn.Module) -> nn.Module:
    """The module inside DDP (or the module itself)."""
    inner = getattr(m, "module", None)
    return inner if isinstance(inner, nn.Module) else m


def backbone_of(m: nn.Module) -> nn.Module:
    """The backbone of a (possibly DDP-wrapped) multi-crop model."""
    backbone = getattr(unwrap(m), "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"{type(m).__name__} has no backbone module")
    return backbone


@dataclass
class TrainingState:
    config: DinoConfig
    student: nn.Module
    teacher: nn.Module
    optimizer: torch.optim.Optimizer
    loss: DINOLoss
    scaler: torch.amp.GradScaler
    detector: CollapseDetector
    step: int = 0
    ibot: IBOTPatchLoss | None = None

    def payload(self, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        extra = {} if self.ibot is None else {"ibot_loss": self.ibot.state_dict()}
        return {
            **extra,
            "step": self.step,
            "epoch": epoch,
            "config": self.config.to_dict(),
            "config_hash": self.config.config_hash(),
            "student": unwrap(self.student).state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loss": self.loss.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "attention_plan": plan_state(),  # auto's kernels: kept on resume
            "collapse_window": self.detector.state(),
            "metrics": {k: float(v) for k, v in metrics.items()},
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Load a payload written by :meth:`payload` (any device)."""
        unwrap(self.student).load_state_dict(ckpt["student"])
        self.teacher.load_state_dict(ckpt["teacher"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.loss.load_state_dict(ckpt["loss"])
        if self.ibot is not None and "ibot_loss" in ckpt:
            self.ibot.load_state_dict(ckpt["ibot_loss"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        load_plan_state(ckpt.get("attention_plan", {}))
        self.detector.load_state(list(ckpt.get("collapse_window", [])))
        self.step = int(ckpt["step"])
