"""DINOLoss on hand-computed cases (paper Eq. 3 and Algorithm 1)."""

from __future__ import annotations

import math

import pytest
import torch

from dino_core.loss import DINOLoss


def _softmax(xs: list[float], t: float) -> list[float]:
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_two_views_k3_matches_hand_computation() -> None:
    # Batch 1, 2 global views, K=3, centre 0. Pairs: (teacher 0, student 1), (teacher 1, student 0).
    s = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
    t = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    ts, tt = 0.1, 0.04
    loss = DINOLoss(3, student_temp=ts)
    loss.eval()
    got = loss(torch.tensor(s), torch.tensor(t), tt).item()
    ce01 = -sum(
        p * math.log(q) for p, q in zip(_softmax(t[0], tt), _softmax(s[1], ts), strict=False)
    )
    ce10 = -sum(
        p * math.log(q) for p, q in zip(_softmax(t[1], tt), _softmax(s[0], ts), strict=False)
    )
    assert got == pytest.approx((ce01 + ce10) / 2, rel=1e-5)
    # written out: softmax([0.5,0.5,0]/0.1) = [e^5, e^5, 1]/(2e^5+1); teacher 0 ≈ one-hot(0)
    assert ce01 == pytest.approx(-math.log(math.exp(5) / (2 * math.exp(5) + 1)), rel=1e-4)


def test_same_view_pairs_are_skipped() -> None:
    # If student view j equals teacher view i exactly, only the cross pairs count.
    torch.manual_seed(0)
    k, b = 5, 4
    t = torch.randn(2 * b, k)
    s = torch.randn(2 * b, k)
    loss = DINOLoss(k, student_temp=0.1).eval()
    got = loss(s, t, 0.05)
    tp = torch.softmax(t / 0.05, -1).chunk(2)
    sl = torch.log_softmax(s / 0.1, -1).chunk(2)
    want = ((-(tp[0] * sl[1]).sum(-1)).mean() + (-(tp[1] * sl[0]).sum(-1)).mean()) / 2
    assert torch.allclose(got, want, atol=1e-6)
    # a loss over all 4 pairs (including same-view) would differ
    with_same = (
        want * 2 + (-(tp[0] * sl[0]).sum(-1)).mean() + (-(tp[1] * sl[1]).sum(-1)).mean()
    ) / 4
    assert not torch.allclose(got, with_same)


def test_pair_count_with_local_crops() -> None:
    k, b, n_local = 4, 3, 4
    t = torch.randn(2 * b, k)
    s = torch.randn((2 + n_local) * b, k)
    loss = DINOLoss(k).eval()
    got = loss(s, t, 0.04)
    tp = torch.softmax(t / 0.04, -1).chunk(2)
    sl = torch.log_softmax(s / 0.1, -1).chunk(2 + n_local)
    terms = [
        (-(tp[i] * sl[j]).sum(-1)).mean() for i in range(2) for j in range(2 + n_local) if i != j
    ]
    assert len(terms) == 2 * (2 + n_local) - 2
    assert torch.allclose(got, torch.stack(terms).mean(), atol=1e-6)


def test_center_update_value_and_only_in_training() -> None:
    loss = DINOLoss(3, center_momentum=0.9)
    t = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [0.0, 0.0, 6.0], [2.0, 2.0, 2.0]])
    s = torch.zeros(4, 3)
    loss.eval()
    loss(s, t, 0.04)
    assert torch.equal(loss.center, torch.zeros(1, 3))
    loss.train()
    loss(s, t, 0.04)
    # mean over 4 rows = [1.5, 1.5, 3.0]; c = 0.9*0 + 0.1*mean
    assert torch.allclose(loss.center, torch.tensor([[0.15, 0.15, 0.30]]))
    loss(s, t, 0.04)
    assert torch.allclose(loss.center, torch.tensor([[0.285, 0.285, 0.57]]))


def test_center_is_used_before_its_update() -> None:
    loss = DINOLoss(3, center_momentum=0.0).train()
    t = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    # A non-uniform student (logits / 0.1 = [1, 0, 0]): the loss depends on the centre used.
    s = torch.tensor([[0.1, 0.0, 0.0], [0.1, 0.0, 0.0]])
    log_z = math.log(math.e + 2)  # log-partition of the student logits [1, 0, 0]
    first = loss(s, t, 0.04).item()
    # With centre 0 the teacher is ~one-hot on dim 0: the loss is -log p_s[0] = log Z - 1.
    # Had the centre been updated first, the teacher would be uniform: log Z - 1/3.
    assert first == pytest.approx(log_z - 1.0, rel=1e-4)
    # Now the centre equals the teacher output, so the next call sees a uniform teacher.
    assert torch.allclose(loss.center, torch.tensor([[5.0, 0.0, 0.0]]))
    assert loss(s, t, 0.04).item() == pytest.approx(log_z - 1.0 / 3.0, rel=1e-4)


def test_sharpening_and_centering_effects() -> None:
    torch.manual_seed(1)
    t = torch.randn(8, 16) * 0.1

    def teacher_entropy(temp: float, center: torch.Tensor) -> float:
        p = torch.softmax((t - center) / temp, -1)
        return float(-(p * p.log()).sum(-1).mean())

    zero = torch.zeros(1, 16)
    # sharpening: lower teacher temperature -> lower entropy
    assert teacher_entropy(0.02, zero) < teacher_entropy(0.2, zero)
    # centering: a dominant dimension is removed -> entropy rises toward ln K
    biased = t.clone()
    biased[:, 3] += 5.0
    p_raw = torch.softmax(biased / 0.04, -1)
    p_cent = torch.softmax((biased - biased.mean(0, keepdim=True)) / 0.04, -1)
    ent = lambda p: float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())  # noqa: E731
    assert ent(p_raw) < 0.05
    assert ent(p_cent) > ent(p_raw) + 0.5


def test_rejects_bad_shapes() -> None:
    loss = DINOLoss(3)
    with pytest.raises(ValueError, match="out_dim"):
        DINOLoss(1)
    with pytest.raises(ValueError, match="rows"):
        loss(torch.zeros(3, 3), torch.zeros(4, 3), 0.04)
