"""The iBOT masked-patch loss (Zhou et al. 2022, arXiv 2111.07832, Eq. 2; as in DINOv2, Oquab
et al. 2023, arXiv 2304.07193, Sec. 4, weight 1.0).

The student sees the global crops with some patches replaced by a learned mask token
(:mod:`dino_core.masking`), the teacher sees them whole; both heads' outputs at the masked
positions only enter the loss: the cross-entropy ``-sum_k P_t(x)_k log P_s(x)_k`` per masked
patch, averaged over the masked patches of each image, then summed over images and divided by
the number of global-crop images (unmasked images count as 0, as DINOv2 does). Student and
teacher temperatures are the patch head's own (DINOv2: 0.1 and the DINO teacher schedule).
Teacher targets: softmax after subtracting the patch centre (an EMA, momentum 0.9, of the mean
teacher output over every masked patch of all ranks, updated after the loss), or
Sinkhorn-Knopp over the masked patches of all ranks when ``loss.centering=sinkhorn_knopp``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from dino_core.centering import CenteredTargets
from dino_core.sinkhorn import global_count


def masked_rows(tokens: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The rows of ``tokens`` ``[n, N, D]`` at ``masks`` ``[n, N]``: ``[M, D]``, image-major."""
    return tokens[masks]


class IBOTPatchLoss(CenteredTargets):
    """``IBOTPatchLoss(K, student_temp=0.1, center_momentum=0.9, centering="ema")``."""

    def teacher_targets(self, teacher_patches: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """Targets ``[M, K]`` for the teacher's outputs at the ``M`` masked patches (their
        number differs between ranks)."""
        if self.uses_center:
            return self.targets(teacher_patches, teacher_temp)
        n_all = global_count(teacher_patches.shape[0], teacher_patches.device)
        if n_all == 0:
            return teacher_patches.float()
        return self.targets(teacher_patches, teacher_temp, n_all)

    def forward(
        self, student_patches: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor
    ) -> torch.Tensor:
        """``student_patches`` ``[M, K]``: the student's outputs at the masked patches of
        ``masks`` ``[n, N]`` (image-major, :func:`masked_rows`); ``targets`` ``[M, K]``."""
        per_image = masks.sum(dim=-1)
        if student_patches.shape[0] != int(per_image.sum()):
            raise ValueError(
                f"{student_patches.shape[0]} student patch outputs for "
                f"{int(per_image.sum())} masked patches"
            )
        s_logp = F.log_softmax(student_patches.float() / self.student_temp, dim=-1)
        ce = torch.sum(-targets.detach() * s_logp, dim=-1)
        weights = (1.0 / per_image.clamp(min=1).float()).repeat_interleave(per_image)
        return (ce * weights.to(ce.device)).sum() / masks.shape[0]

    @torch.no_grad()
    def update_center(self, teacher_patches: torch.Tensor) -> None:
        """``c <- m c + (1 - m) mean`` over the masked patches of all ranks (none: unchanged)."""
        stats = torch.cat(
            [
                teacher_patches.float().sum(dim=0),
                torch.tensor([float(teacher_patches.shape[0])], device=teacher_patches.device),
            ]
        )
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        count = float(stats[-1])
        if count == 0:
            return
        m = self.center_momentum
        self.center.mul_(m).add_(stats[None, :-1] / count * (1.0 - m))
