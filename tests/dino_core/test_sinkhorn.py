"""Sinkhorn-Knopp centering (DINOv2): the plan's marginals, a direct numpy implementation,
ranks that together equal one process, and the collapse signal it gives."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dino_core.loss import DINOLoss
from dino_core.monitor import CollapseDetector, step_statistics
from dino_core.sinkhorn import sinkhorn_knopp


def numpy_sinkhorn(logits: np.ndarray, temp: float, iterations: int) -> np.ndarray:
    """The algorithm as DINOv2 writes it (K x B matrix, no shift), in float64."""
    q = np.exp(logits / temp).T
    k, b = q.shape
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(axis=1, keepdims=True) / k
        q = q / q.sum(axis=0, keepdims=True) / b
    return (q * b).T


def test_three_iterations_equal_the_direct_numpy_computation() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 0.5, size=(6, 5))
    got = sinkhorn_knopp(torch.tensor(logits, dtype=torch.float32), 0.1, 3)
    want = numpy_sinkhorn(logits, 0.1, 3)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)
    # and not just a softmax: 3 rounds moved it
    softmax = torch.softmax(torch.tensor(logits) / 0.1, dim=-1).numpy()
    assert np.abs(want - softmax).max() > 1e-2


def test_hand_checkable_two_by_two() -> None:
    # exp(logits / 1) = [[e, 1], [1, 1]]: one round of rows then columns, by hand.
    e = math.e
    q = np.array([[e, 1.0], [1.0, 1.0]])  # rows = samples here; transpose as the code does
    got = sinkhorn_knopp(torch.log(torch.tensor(q, dtype=torch.float32)), 1.0, 1).numpy()
    # prototype (column) sums e+1 and 2 -> each to 1/2; then sample rows to 1/2; times B=2
    step = q / q.sum(axis=0, keepdims=True) / 2
    step = step / step.sum(axis=1, keepdims=True) / 2 * 2
    np.testing.assert_allclose(got, step, rtol=1e-6)
    assert got[0, 0] == pytest.approx((e / (e + 1)) / (e / (e + 1) + 0.5), rel=1e-6)


def test_enough_iterations_give_a_doubly_stochastic_plan() -> None:
    torch.manual_seed(0)
    b, k = 12, 4
    q = sinkhorn_knopp(torch.randn(b, k), 0.5, 500).double()
    torch.testing.assert_close(q.sum(1), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        q.sum(0), torch.full((k,), b / k, dtype=torch.float64), rtol=0, atol=1e-6
    )


def test_no_overflow_at_a_low_temperature() -> None:
    # logits of 5 at tau 0.02: exp(250) overflows float32; the per-prototype shift avoids it
    logits = torch.tensor([[5.0, -5.0, 0.0], [-5.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    q = sinkhorn_knopp(logits, 0.02, 3)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q, torch.eye(3), atol=1e-6, rtol=0)


def test_sk_mode_neither_uses_nor_updates_the_centre() -> None:
    torch.manual_seed(0)
    t, s = torch.randn(8, 5), torch.randn(8, 5)
    loss = DINOLoss(5, centering="sinkhorn_knopp", sk_iterations=3).train()
    loss.center.fill_(3.0)  # a stale centre (a run switching from ema) is ignored and kept
    got = loss(s, t, 0.1)
    assert torch.equal(loss.center, torch.full((1, 5), 3.0))
    targets = sinkhorn_knopp(t, 0.1, 3).chunk(2)
    logp = torch.log_softmax(s / 0.1, -1).chunk(2)
    want = ((-(targets[0] * logp[1]).sum(-1)).mean() + (-(targets[1] * logp[0]).sum(-1)).mean()) / 2
    torch.testing.assert_close(got, want)


def test_collapse_detector_sees_uniform_sk_targets() -> None:
    """A collapsed (constant) teacher output: SK spreads every sample over all prototypes,
    so the teacher entropy is ln K and the detector reports a uniform collapse."""
    k = 16
    constant = torch.randn(1, k).expand(8, k)
    targets = sinkhorn_knopp(constant, 0.04, 3)
    stats = step_statistics(torch.randn(8, k), constant, torch.zeros(1, k), 0.1, 0.04, targets)
    assert float(stats["teacher_entropy"]) == pytest.approx(math.log(k), rel=1e-5)
    # the centred softmax of the same output would have looked sharp (not uniform)
    plain = step_statistics(torch.randn(8, k), constant, torch.zeros(1, k), 0.1, 0.04)
    assert float(plain["teacher_entropy"]) < 0.9 * math.log(k)
    h, h_batch = float(stats["teacher_entropy"]), float(stats["teacher_batch_entropy"])
    det = CollapseDetector(k, warmup_steps=0, patience=3, batch_outputs=8)
    found = [det.update(i, h, h_batch, 0.0) for i in range(3)]
    assert found[-1] is not None and found[-1][0] == "uniform"
    # sharp SK targets are distinct per sample (the batch uses every prototype equally):
    # not a one-hot collapse
    sharp = CollapseDetector(k, warmup_steps=0, patience=3, batch_outputs=8)
    assert all(sharp.update(i, 0.0, math.log(8), 1.0) is None for i in range(5))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_sinkhorn(rank: int, world: int, port: int, logits: torch.Tensor, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        mine = logits.chunk(world)[rank]
        torch.save(sinkhorn_knopp(mine, 0.05, 3), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one_process_with_the_whole_batch(tmp_path: Path) -> None:
    torch.manual_seed(3)
    logits = torch.randn(10, 7)
    mp.start_processes(
        _rank_sinkhorn,
        args=(2, _free_port(), logits, str(tmp_path)),
        nprocs=2,
        start_method="spawn",
    )
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    whole = sinkhorn_knopp(logits, 0.05, 3)
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-6, atol=1e-7)
    # a rank alone (no all-reduce) would not give these targets
    alone = sinkhorn_knopp(logits[:5], 0.05, 3)
    assert (alone - whole[:5]).abs().max() > 1e-3
