"""How a teacher output becomes a target distribution: centred softmax or Sinkhorn-Knopp.

DINO (Caron et al. 2021, Sec. 3.1): ``softmax((t - c) / tau_t)`` with ``c`` an EMA of the
teacher outputs (each loss updates its own centre after use). DINOv2 (Oquab et al. 2023, arXiv
2304.07193, Sec. 4): the Sinkhorn-Knopp plan of ``exp(t / tau_t)``
(:func:`dino_core.sinkhorn.sinkhorn_knopp`); the centre is then unused but kept. The DINO
(CLS) and iBOT (patch) losses share this.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dino_core.config import Centering
from dino_core.sinkhorn import sinkhorn_knopp


class CenteredTargets(nn.Module):
    """A loss with temperatures, a centre buffer ``[1, out_dim]`` and a centering mode."""

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        *,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        centering: Centering = "ema",
        sk_iterations: int = 3,
    ) -> None:
        super().__init__()
        if out_dim < 2:
            raise ValueError(f"out_dim={out_dim} must be >= 2 prototypes (head.out_dim)")
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.centering = centering
        self.sk_iterations = sk_iterations
        self.register_buffer("center", torch.zeros(1, out_dim))

    @property
    def uses_center(self) -> bool:
        return self.centering == "ema"

    @torch.no_grad()
    def targets(
        self, teacher_out: torch.Tensor, teacher_temp: float, n_samples: float | None = None
    ) -> torch.Tensor:
        """Targets (float32, no gradient), one row per teacher output; ``n_samples``: the rows
        of all ranks for Sinkhorn-Knopp (None = rows x world size)."""
        if not self.uses_center:
            iters = self.sk_iterations
            return sinkhorn_knopp(teacher_out, teacher_temp, iters, n_samples=n_samples)
        return F.softmax((teacher_out.float() - self.center) / teacher_temp, dim=-1)
