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
from typing import Any

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

    ``teacher_entropy`` is the mean per-sample entropy, ``teacher_batch_entropy`` the entropy
    of the batch-mean teacher distribution (how many prototypes the batch uses at all).
    ``teacher_targets``: the targets the loss used when they are not the centred softmax
    (Sinkhorn-Knopp); the teacher entropies are then theirs.
    """
    s_logp = F.log_softmax(student_out.float() / student_temp, dim=-1)
    if teacher_targets is not None:
        p = teacher_targets.float()
    else:
        p = F.softmax((teacher_out.float() - center) / teacher_temp, dim=-1)
    tiny = torch.finfo(p.dtype).tiny
    p_mean = p.mean(0)
    return {
        "teacher_entropy": -(p * p.clamp_min(tiny).log()).sum(-1).mean(),
        "teacher_batch_entropy": -(p_mean * p_mean.clamp_min(tiny).log()).sum(),
        "student_entropy": -(s_logp.exp() * s_logp).sum(-1).mean(),
        "center_norm": center.float().norm(),
    }


# Thresholds, as fractions of the entropy a signal would have without any collapse, set
# between what tiny real runs measured (tests/dino_core/test_collapse.py: 2-block ViT, K = 64,
# batch 16, N = 32; per-step values after the first 20 steps):
#   both (teacher 0.04, centre 0.9): H 0.42-0.66 ln K, H_batch >= 0.86 ln(min(K, N)),
#     KL >= 0.21 ln K -- sharp and diverse, never flagged;
#   the learning preset (configs/synthetic_learning.yaml, teacher 0.02, K = 1024, N = 128,
#     all 160 steps): H 0.20-0.48 ln K, H_batch >= 0.84 ln(min(K, N)), KL >= 0.14 ln K;
#   sharpening only (centre momentum 1): window means H 0.15 ln K, H_batch 0.38 ln(min(K, N))
#     -- one-hot, flagged at step 20 (the entropy-only rule it replaces, H <= 0.02 ln K, let
#     it run all 300 steps, ending at H = 0.10 ln K);
#   centering only (teacher 0.1 = student): H 0.85-0.92 ln K rising, KL 0.08-0.17 ln K
#     falling -- uniform, flagged at step 140.
# The Fashion-MNIST preset's teacher sharpens from H 0.21 ln K at step 500 to 0.07 ln K by step
# 2,000 while H_batch stays >= 0.65 ln(min(K, N)) (configs/fashion_mnist_cpu.yaml, EMA 0.98,
# session 11): a sharp teacher is not a collapsed one unless the whole batch agrees.
UNIFORM_RATIO = 0.98  # flat targets: nothing to learn whatever the student does
NEAR_UNIFORM_RATIO = 0.9  # near-flat targets ...
KL_RATIO = 0.1  # ... that the student already matches: the loss sits at its floor near ln K
ONE_HOT_RATIO = 0.4  # the batch-mean distribution is spread over <= min(K, N)^0.4 prototypes


@dataclass
class CollapseDetector:
    """Flags a collapse that persists, as window means over ``patience`` steps after
    ``warmup_steps`` (paper Sec. 5.3, Fig. 7: with one of centering and sharpening alone,
    KL(teacher||student) goes to 0 and the teacher output becomes uniform or one-hot).

    * ``uniform`` (sharpening lost): per-sample teacher entropy ``H`` >= 0.98 ln K, or
      ``H`` >= 0.9 ln K while KL <= 0.1 ln K (the student matches near-flat targets).
    * ``one_hot`` (centering lost): the entropy of the batch-mean teacher distribution
      ``H_batch`` <= 0.4 ln(min(K, N)), N = teacher outputs per batch and rank: every image
      points at the same few prototypes. ``H <= H_batch`` always (entropy is concave), so
      the per-sample entropy is then low too; a confident but diverse teacher (``H`` low,
      ``H_batch`` high) is healthy and not flagged.

    Under Sinkhorn-Knopp centering the targets share the prototypes equally over the batch by
    construction, so ``H_batch`` stays near its maximum and ``one_hot`` cannot fire; a
    constant teacher output then shows as ``uniform`` targets.
    """

    out_dim: int
    warmup_steps: int
    patience: int
    batch_outputs: int = 2
    history: deque[tuple[float, float, float]] = field(default_factory=deque)

    @property
    def ln_k(self) -> float:
        return math.log(self.out_dim)

    @property
    def ln_batch(self) -> float:
        """The largest batch-mean entropy a batch of one-hot targets could reach."""
        return math.log(max(min(self.out_dim, self.batch_outputs), 2))

    def update(
        self, step: int, teacher_entropy: float, batch_entropy: float, kl: float
    ) -> tuple[str, dict[str, float]] | None:
        """Feed one step; returns ``(kind, evidence)`` once collapse is established."""
        if step < self.warmup_steps:
            self.history.clear()
            return None
        self.history.append((teacher_entropy, batch_entropy, kl))
        while len(self.history) > self.patience:
            self.history.popleft()
        if len(self.history) < self.patience:
            return None
        n = len(self.history)
        h, h_batch, kl_mean = (sum(v[i] for v in self.history) / n for i in range(3))
        evidence = {
            "step": float(step),
            "ln_k": self.ln_k,
            "ln_batch": self.ln_batch,
            "teacher_entropy": h,
            "teacher_batch_entropy": h_batch,
            "kl": kl_mean,
            "teacher_entropy_min": min(v[0] for v in self.history),
            "teacher_entropy_max": max(v[0] for v in self.history),
            "window_steps": float(self.patience),
        }
        flat = h >= UNIFORM_RATIO * self.ln_k
        if flat or (h >= NEAR_UNIFORM_RATIO * self.ln_k and kl_mean <= KL_RATIO * self.ln_k):
            return "uniform", evidence
        if h_batch <= ONE_HOT_RATIO * self.ln_batch:
            return "one_hot", evidence
        return None

    def state(self) -> list[list[float]]:
        return [list(v) for v in self.history]

    def load_state(self, values: list[Any]) -> None:
        """From :meth:`state`; a window saved before the batch signals existed (plain
        entropies) is dropped: the window refills within ``patience`` steps."""
        rows = [v for v in values if isinstance(v, (list, tuple)) and len(v) == 3]
        self.history = deque((float(a), float(b), float(c)) for a, b, c in rows)
