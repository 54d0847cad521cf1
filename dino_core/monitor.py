"""What a DINO run reports each step, and the collapse detector.

Paper Sec. 5.3 / Fig. 7: with centering alone the teacher output becomes uniform (its
entropy reaches ln K and the loss sits at ln K); with sharpening alone it becomes one-hot
(entropy → 0). Both together learn. Because every teacher view appears in the same number of
loss pairs, ``KL(teacher‖student) = loss − H(teacher)`` exactly (of the DINO term).
With Sinkhorn-Knopp centering (DINOv2) the teacher's entropy is that of its SK targets: the
plan spreads the prototypes evenly over the batch, so a collapse shows as each sample's target
becoming uniform (entropy ln K), while one-hot targets (entropy 0) are the healthy extreme.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@torch.no_grad()
def step_statistics(
    student_out: torch.Tensor,
    teacher_out: torch.Tensor,
    center: torch.Tensor,
    student_temp: float,
    teacher_temp: float,
    teacher_targets: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Entropies (nats) of the sharpened/centred teacher and of the student, as tensors.

    ``teacher_targets``: the targets the loss used when they are not the centred softmax
    (Sinkhorn-Knopp); the teacher entropy is then theirs.
    """
    s_logp = F.log_softmax(student_out.float() / student_temp, dim=-1)
    if teacher_targets is not None:
        p = teacher_targets.float()
        teacher_entropy = -(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum(-1).mean()
    else:
        t_logp = F.log_softmax((teacher_out.float() - center) / teacher_temp, dim=-1)
        teacher_entropy = -(t_logp.exp() * t_logp).sum(-1).mean()
    return {
        "teacher_entropy": teacher_entropy,
        "student_entropy": -(s_logp.exp() * s_logp).sum(-1).mean(),
        "center_norm": center.float().norm(),
    }


@dataclass
class CollapseDetector:
    """Flags ``uniform`` (teacher entropy ≥ ``uniform_ratio``·ln K) or ``one_hot`` (entropy ≤
    ``one_hot_ratio``·ln K) when it persists for ``patience`` steps after ``warmup_steps``.

    ``detect_one_hot=False`` under Sinkhorn-Knopp centering: its targets share the prototypes
    equally over the batch, so sharp targets are distinct per sample, not a collapse.
    """

    out_dim: int
    warmup_steps: int
    patience: int
    uniform_ratio: float = 0.98
    one_hot_ratio: float = 0.02
    detect_one_hot: bool = True
    history: deque[float] = field(default_factory=deque)

    @property
    def ln_k(self) -> float:
        return math.log(self.out_dim)

    def update(self, step: int, teacher_entropy: float) -> tuple[str, dict[str, float]] | None:
        """Feed one step; returns ``(kind, evidence)`` once collapse is established."""
        if step < self.warmup_steps:
            self.history.clear()
            return None
        self.history.append(teacher_entropy)
        while len(self.history) > self.patience:
            self.history.popleft()
        if len(self.history) < self.patience:
            return None
        lo, hi = min(self.history), max(self.history)
        evidence = {
            "step": float(step),
            "ln_k": self.ln_k,
            "teacher_entropy_min": lo,
            "teacher_entropy_max": hi,
            "window_steps": float(self.patience),
        }
        if lo >= self.uniform_ratio * self.ln_k:
            return "uniform", evidence
        if self.detect_one_hot and hi <= self.one_hot_ratio * self.ln_k:
            return "one_hot", evidence
        return None

    def state(self) -> list[float]:
        return list(self.history)

    def load_state(self, values: list[float]) -> None:
        self.history = deque(values)
