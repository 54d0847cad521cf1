"""Sinkhorn-Knopp teacher targets (SwAV, Caron et al. 2020; DINOv2, Oquab et al. 2023, arXiv
2304.07193, Sec. 4 "Sinkhorn-Knopp centering", 3 iterations in ``ssl_default_config.yaml``).

The teacher's scores ``Q = exp(t / tau_t)`` (K prototypes x B samples) are scaled to a
transport plan: the whole matrix to sum 1, then, ``iterations`` times, every prototype's row to
``1/K`` and every sample's column to ``1/B``; finally the columns are scaled to sum 1, so each
sample's target is a distribution over the prototypes. Every sum runs over the samples of all
ranks (``torch.distributed.all_reduce``), so ranks holding parts of a batch get the targets one
process holding the whole batch would compute.

Before the exponential each prototype's scores are shifted by their maximum over all samples:
the first row normalisation divides that factor out again, so the plan is unchanged, and no
entry overflows and no row sums to zero in float32 (a plain ``exp(t / 0.02)`` of logits beyond
±1.8 would).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce(t: torch.Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> None:
    if _distributed():
        dist.all_reduce(t, op=op)


def global_count(n_local: int, device: torch.device) -> float:
    """The number of rows of all ranks together (one all-reduce; ranks may differ)."""
    count = torch.tensor([float(n_local)], device=device)
    _all_reduce(count)
    return float(count.item())


@torch.no_grad()
def sinkhorn_knopp(
    logits: torch.Tensor,
    temperature: float,
    iterations: int,
    *,
    n_samples: float | None = None,
) -> torch.Tensor:
    """Targets ``[B, K]`` (rows sum to 1) for teacher ``logits`` ``[B, K]``, in float32.

    ``n_samples``: the number of rows of all ranks together; ``None`` = ``B x world size``
    (every rank holds as many rows, as for the CLS tokens of a batch).
    """
    if iterations < 1:
        raise ValueError(f"loss.sk_iterations={iterations} must be >= 1 (DINOv2: 3)")
    scores = logits.float() / temperature
    n_protos = scores.shape[1]
    if n_samples is None:
        world = dist.get_world_size() if _distributed() else 1
        n_samples = float(scores.shape[0] * world)
    shift = (
        scores.amax(dim=0)
        if scores.shape[0] > 0
        else torch.full((n_protos,), -torch.inf, device=scores.device)
    )
    _all_reduce(shift, dist.ReduceOp.MAX)
    q = torch.exp(scores - shift).t()  # K x B
    total = q.sum()
    _all_reduce(total)
    q /= total
    for _ in range(iterations):
        per_proto = q.sum(dim=1, keepdim=True)
        _all_reduce(per_proto)
        q /= per_proto
        q /= n_protos
        q /= q.sum(dim=0, keepdim=True)
        q /= n_samples
    q *= n_samples
    return q.t()
