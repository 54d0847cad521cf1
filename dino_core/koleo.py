"""The KoLeo regulariser (Sablayrolles et al. 2019, "Spreading vectors for similarity search",
arXiv 1806.03198; used by DINOv2, Oquab et al. 2023, arXiv 2304.07193, Sec. 4, weight 0.1).

The Kozachenko-Leonenko differential-entropy estimator, up to constants, of the L2-normalised
features ``x_1 .. x_n`` of one crop of the batch: ``-1/n sum_i log(min_{j != i} ||x_i - x_j||
+ eps)``. Minimising it spreads the features over the sphere. DINOv2 applies it per rank to the
student's backbone CLS features of each global crop separately (never between two views of one
image) and adds ``weight x`` the sum over the global crops; it is computed in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KOLEO_EPS = 1e-8  # DINOv2's eps, inside the normalisation and the logarithm


def koleo(features: torch.Tensor, eps: float = KOLEO_EPS) -> torch.Tensor:
    """The estimator for ``features`` ``[n, d]`` (n >= 2), in float32 outside autocast."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"KoLeo needs at least 2 samples per crop and rank, got features of shape "
            f"{tuple(features.shape)}: raise train.batch_size or set loss.koleo_weight=0"
        )
    with torch.autocast(features.device.type, enabled=False):
        x = F.normalize(features.float(), p=2, dim=-1, eps=eps)
        with torch.no_grad():  # which neighbour is nearest is not differentiated
            sims = x @ x.t()
            sims.fill_diagonal_(-torch.inf)
            nearest = sims.argmax(dim=1)
        distance = torch.linalg.vector_norm(x - x[nearest], dim=-1)
        return -torch.log(distance + eps).mean()


def koleo_per_crop(features: torch.Tensor, n_crops: int) -> torch.Tensor:
    """Mean of :func:`koleo` over the ``n_crops`` crops stacked (crop-major) in ``features``."""
    return torch.stack([koleo(f) for f in features.chunk(n_crops)]).mean()
