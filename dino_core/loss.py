"""The DINO loss: cross-entropy between sharpened, centred teacher and student outputs.

Paper Sec. 3.1, Eq. (3) and Algorithm 1:
``L = mean over pairs (i in globals, j in all crops, j != i) of  -sum_k P_t(i)_k log P_s(j)_k``
with ``P_s = softmax(s / tau_s)`` and ``P_t = softmax((t - c) / tau_t)`` (no gradient through
the teacher). The centre ``c`` is an EMA (momentum m = 0.9) of the batch-mean teacher logits,
all-reduced across ranks and updated *after* the loss is computed. Centering prevents one
dimension from dominating; sharpening (tau_t < tau_s) prevents the uniform solution.

With ``centering="sinkhorn_knopp"`` (DINOv2, Oquab et al. 2023, arXiv 2304.07193, Sec. 4) the
teacher targets are the Sinkhorn-Knopp normalisation of ``exp(t / tau_t)`` over both global
crops of all ranks (:mod:`dino_core.sinkhorn`) instead; the EMA centre is then neither used nor
updated, but stays in the state so a run can switch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from dino_core.centering import CenteredTargets


class DINOLoss(CenteredTargets):
    """``DINOLoss(K, student_temp=0.1, center_momentum=0.9, centering="ema")``."""

    n_global = 2  # paper: 2 global crops, the teacher's views

    def teacher_targets(self, teacher_out: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """The teacher's target distributions (float32, no gradient), one row per output:
        every rank holds as many rows (the same batch size)."""
        return self.targets(teacher_out, teacher_temp)

    def forward(
        self,
        student_out: torch.Tensor,
        teacher_out: torch.Tensor,
        teacher_temp: float,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``student_out``: all crops stacked along the batch (globals first);
        ``teacher_out``: the ``n_global`` global crops; ``targets``: their
        :meth:`teacher_targets` if already computed. Returns the mean over valid pairs."""
        n_crops = student_out.shape[0] // (teacher_out.shape[0] // self.n_global)
        batch = teacher_out.shape[0] // self.n_global
        if student_out.shape[0] != n_crops * batch or n_crops < self.n_global:
            raise ValueError(
                f"student_out has {student_out.shape[0]} rows, not a multiple of the "
                f"teacher batch {batch} with at least {self.n_global} crops"
            )
        s_logp = F.log_softmax(student_out.float() / self.student_temp, dim=-1).chunk(n_crops)
        t_full = self.teacher_targets(teacher_out, teacher_temp) if targets is None else targets
        t_prob = t_full.detach().chunk(self.n_global)
        total = student_out.new_zeros((), dtype=torch.float32)
        n_pairs = 0
        for i, t in enumerate(t_prob):
            for j, s in enumerate(s_logp):
                if j == i:
                    continue  # the same view is never its own target
                total = total + torch.sum(-t * s, dim=-1).mean()
                n_pairs += 1
        loss = total / n_pairs
        if self.training and self.uses_center:
            self.update_center(teacher_out)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """``c <- m c + (1 - m) mean(teacher_out)``, the mean taken over all ranks' batches."""
        batch_sum = teacher_out.float().sum(dim=0, keepdim=True)
        count = torch.tensor([teacher_out.shape[0]], dtype=torch.float32, device=batch_sum.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_sum)
            dist.all_reduce(count)
        batch_center = batch_sum / count
        m = self.center_momentum
        self.center.mul_(m).add_(batch_center * (1.0 - m))
