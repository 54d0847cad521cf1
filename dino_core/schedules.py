"""Every schedule of a DINO run as a pure function of the global step.

Formulas follow the official ``cosine_scheduler`` exactly (paper App. A): the learning rate
warms up linearly from 0 to ``lr × batch/256`` over 10 epochs, then follows a cosine to
``min_lr`` (1e-6); weight decay follows a cosine 0.04 → 0.4; the teacher momentum a cosine
0.996 → 1; the teacher temperature warms up linearly 0.04 → 0.07 over 30 epochs (indexed by
epoch, as the official code does) and stays constant; the last layer is frozen during the
first ``freeze_last_layer`` epoch(s). Resuming or extending a run cannot drift: nothing here
has state. With ``optim.lr_scaling="sqrt"`` the peak lr is ``lr × sqrt(batch/1024)`` instead
(DINOv2, Oquab et al. 2023, arXiv 2304.07193: ``scaling_rule: sqrt_wrt_1024``, base 0.004).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dino_core.config import DinoConfig


def cosine(step: int, total: int, start: float, end: float) -> float:
    """Official cosine: ``end + (start-end)/2 (1 + cos(pi step/total))`` for step in [0, total)."""
    if total <= 0:
        return end
    step = min(max(step, 0), total - 1)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * step / total))


def linear_warmup(step: int, warmup: int, start: float, end: float) -> float:
    """``np.linspace(start, end, warmup)[step]``: both ends included."""
    if warmup <= 1:
        return end
    return start + (end - start) * step / (warmup - 1)


def warmup_cosine(
    step: int, total: int, warmup: int, base: float, final: float, warmup_start: float = 0.0
) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine over the remaining steps."""
    if step < warmup:
        return linear_warmup(step, warmup, warmup_start, base)
    return cosine(step - warmup, total - warmup, base, final)


def peak_lr(cfg: DinoConfig) -> float:
    """``optim.lr`` scaled to the global batch: linear per 256 images (DINO v1) or square root
    per 1024 images (DINOv2)."""
    if cfg.optim.lr_scaling == "sqrt":
        return cfg.optim.lr * math.sqrt(cfg.train.batch_size / 1024.0)
    return cfg.optim.lr * cfg.train.batch_size / 256.0


@dataclass(frozen=True)
class Schedules:
    """All per-step values of one run, derived from the config and the data size."""

    steps_per_epoch: int
    epochs: int
    base_lr: float
    min_lr: float
    warmup_steps: int
    wd_start: float
    wd_end: float
    momentum_start: float
    momentum_end: float
    temp_start: float
    temp_end: float
    temp_warmup_epochs: int
    freeze_last_layer_epochs: int

    @classmethod
    def from_config(cls, cfg: DinoConfig, steps_per_epoch: int) -> Schedules:
        return cls(
            steps_per_epoch=steps_per_epoch,
            epochs=cfg.train.epochs,
            base_lr=peak_lr(cfg),
            min_lr=cfg.optim.min_lr,
            warmup_steps=cfg.optim.warmup_epochs * steps_per_epoch,
            wd_start=cfg.optim.weight_decay,
            wd_end=cfg.optim.weight_decay_end,
            momentum_start=cfg.teacher.momentum,
            momentum_end=cfg.teacher.final_momentum,
            temp_start=cfg.loss.warmup_teacher_temp,
            temp_end=cfg.loss.teacher_temp,
            temp_warmup_epochs=cfg.loss.warmup_teacher_temp_epochs,
            freeze_last_layer_epochs=cfg.optim.freeze_last_layer,
        )

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def epoch(self, step: int) -> int:
        return step // self.steps_per_epoch

    def lr(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps, self.base_lr, self.min_lr)

    def weight_decay(self, step: int) -> float:
        return cosine(step, self.total_steps, self.wd_start, self.wd_end)

    def momentum(self, step: int) -> float:
        return cosine(step, self.total_steps, self.momentum_start, self.momentum_end)

    def teacher_temp(self, step: int) -> float:
        e = self.epoch(step)
        if e < self.temp_warmup_epochs:
            return linear_warmup(e, self.temp_warmup_epochs, self.temp_start, self.temp_end)
        return self.temp_end

    def last_layer_frozen(self, step: int) -> bool:
        return self.epoch(step) < self.freeze_last_layer_epochs

    def values(self, step: int) -> dict[str, float]:
        """Every schedule at ``step`` (logged each step)."""
        return {
            "lr": self.lr(step),
            "wd": self.weight_decay(step),
            "momentum": self.momentum(step),
            "teacher_temp": self.teacher_temp(step),
            "last_layer_frozen": float(self.last_layer_frozen(step)),
        }
