"""The iBOT masked-patch loss (DINOv2): block masks, the loss on masked patches only, the
mask token in the student's input, and its config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dino_core.config import ConfigError, build_config
from dino_core.ibot import IBOTPatchLoss, masked_rows
from dino_core.masking import batch_masks, block_mask, step_masks
from dino_core.models import build_model
from dino_core.models.tokens import vit_tokens
from tests.dino_core.conftest import tiny_config

IBOT = {"loss.ibot_weight": 1.0}


def test_block_mask_sets_exactly_the_target_count() -> None:
    rng = np.random.default_rng(0)
    for n in [0, 1, 3, 7, 16, 50, 98, 196]:
        mask = block_mask(14, 14, n, rng)
        assert mask.shape == (14, 14) and int(mask.sum()) == n


def test_block_masks_are_blocks() -> None:
    """Masked patches come in rectangles: most have a masked 4-neighbour (random singles
    would on a 14x14 grid at 30% only ~76% of the time; blocks give nearly all)."""
    rng = np.random.default_rng(1)
    with_neighbour, total = 0, 0
    for _ in range(50):
        m = block_mask(14, 14, 59, rng)
        padded = np.pad(m, 1)
        near = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
        with_neighbour += int((m & near).sum())
        total += int(m.sum())
    assert with_neighbour / total > 0.95


def test_mask_ratio_distribution_matches_its_bounds() -> None:
    rng = np.random.default_rng(2)
    n_images, grid, lo, hi = 64, (8, 8), 0.1, 0.5
    n_patches = 64
    for _ in range(20):
        masks = batch_masks(n_images, grid, (lo, hi), 0.5, rng)
        assert masks.shape == (n_images, n_patches) and masks.dtype == torch.bool
        counts = masks.sum(1)
        masked = counts[counts > 0]
        assert len(masked) == int(n_images * 0.5)  # probability 0.5 (the lowest ratio > 0)
        # the i-th masked image (in ratio order) lies in the i-th of 32 equal sub-intervals
        edges = np.linspace(lo, hi, len(masked) + 1)
        for i, c in enumerate(sorted(masked.tolist())):
            assert int(n_patches * edges[i]) <= c <= int(n_patches * edges[i + 1])
        ratios = masked.double() / n_patches
        assert float(ratios.min()) >= lo - 1 / n_patches and float(ratios.max()) <= hi


def test_step_masks_are_a_pure_function_of_seed_step_and_rank() -> None:
    args = (64, (4, 4), (0.1, 0.5), 0.5)
    a = step_masks(0, 5, 0, *args)
    assert torch.equal(a, step_masks(0, 5, 0, *args))
    assert not torch.equal(a, step_masks(0, 6, 0, *args))
    assert not torch.equal(a, step_masks(0, 5, 1, *args))
    assert not torch.equal(a, step_masks(1, 5, 0, *args))


def _patch_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    n, n_patches, k = 3, 4, 5
    student = torch.randn(n, n_patches, k)
    teacher = torch.randn(n, n_patches, k)
    masks = torch.tensor(
        [[True, False, False, True], [False, False, False, False], [False, True, False, False]]
    )
    return student, teacher, masks


def test_loss_is_the_per_image_mean_over_masked_patches() -> None:
    student, teacher, masks = _patch_case()
    loss = IBOTPatchLoss(5, student_temp=0.1)
    targets = loss.teacher_targets(masked_rows(teacher, masks), 0.04)
    got = loss(masked_rows(student, masks), targets, masks)

    def ce(i: int, j: int) -> float:
        p = torch.softmax(teacher[i, j] / 0.04, -1)
        return float(-(p * torch.log_softmax(student[i, j] / 0.1, -1)).sum())

    # image 0: mean of patches 0 and 3; image 1: no mask, counts 0; image 2: patch 1
    want = ((ce(0, 0) + ce(0, 3)) / 2 + 0.0 + ce(2, 1)) / 3
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_changing_an_unmasked_patch_leaves_the_loss_unchanged() -> None:
    student, teacher, masks = _patch_case()
    loss = IBOTPatchLoss(5)
    targets = loss.teacher_targets(masked_rows(teacher, masks), 0.04)
    before = loss(masked_rows(student, masks), targets, masks)
    changed = student.clone()
    changed[0, 1] += 10.0  # unmasked
    changed[1] -= 5.0  # an image without mask
    assert torch.equal(loss(masked_rows(changed, masks), targets, masks), before)
    changed[0, 3] += 1.0  # masked
    assert not torch.equal(loss(masked_rows(changed, masks), targets, masks), before)
    # and the gradient reaches masked patches only
    full = student.clone().requires_grad_(True)
    loss(masked_rows(full, masks), targets, masks).backward()
    assert full.grad is not None
    assert (full.grad[~masks] == 0).all() and (full.grad[masks].abs().sum(-1) > 0).all()


def test_patch_centre_is_the_mean_over_masked_patches() -> None:
    loss = IBOTPatchLoss(2, center_momentum=0.9)
    loss.update_center(torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    torch.testing.assert_close(loss.center, torch.tensor([[0.2, 0.1]]))
    loss.update_center(torch.zeros(0, 2))  # no masked patch anywhere: unchanged
    torch.testing.assert_close(loss.center, torch.tensor([[0.2, 0.1]]))
    # and the centre is subtracted before the teacher softmax
    t = torch.tensor([[0.2, 0.1]])
    assert torch.allclose(loss.teacher_targets(t, 0.04), torch.tensor([[0.5, 0.5]]))


def test_sk_patch_targets_are_plans_over_the_masked_patches() -> None:
    loss = IBOTPatchLoss(4, centering="sinkhorn_knopp", sk_iterations=200)
    q = loss.teacher_targets(torch.randn(8, 4), 0.5)
    torch.testing.assert_close(q.sum(1), torch.ones(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(q.sum(0), torch.full((4,), 2.0), atol=1e-4, rtol=0)
    assert loss.teacher_targets(torch.zeros(0, 4), 0.5).shape == (0, 4)


def test_student_sees_the_mask_token_and_the_teacher_does_not() -> None:
    cfg = tiny_config(**IBOT)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert model.mask_token is not None and model.mask_token.shape == (1, 32)
    x = torch.randn(4, 3, 16, 16)  # 2 global crops of 2 images, 4x4 patches
    masks = torch.zeros(4, 16, dtype=torch.bool)
    masks[0, [0, 5]] = True
    masks[3, 15] = True
    vit = model.backbone
    # no mask: the tokens are timm's forward_features; an all-False mask changes nothing
    torch.testing.assert_close(vit_tokens(vit, x), vit.forward_features(x))
    none = torch.zeros_like(masks)
    torch.testing.assert_close(vit_tokens(vit, x, none, model.mask_token), vit.forward_features(x))
    out = model([x[:2], x[2:]], masks, parts=True)
    assert out.patch_logits is not None and out.patch_logits.shape == (3, cfg.head.out_dim)
    teacher = model([x[:2], x[2:]], masks, parts=True, mask_input=False)
    # unmasked images are unchanged, masked ones differ; the teacher saw them whole
    torch.testing.assert_close(out.logits[1:3], teacher.logits[1:3])
    assert not torch.allclose(out.logits[0], teacher.logits[0])
    torch.testing.assert_close(teacher.logits, model([x[:2], x[2:]]))
    tokens = vit.forward_features(x)[:, vit.num_prefix_tokens :]
    torch.testing.assert_close(teacher.patch_logits, model.head(tokens[masks]))
    # the mask token gets a gradient even when a batch has no masked patch (DDP needs it)
    model.train()
    out = model([x[:2], x[2:]], none, parts=True)
    out.logits.sum().backward()
    assert model.mask_token.grad is not None


def test_separate_patch_head_has_its_own_sizes() -> None:
    cfg = tiny_config(**IBOT, **{"ibot.separate_head": True, "ibot.out_dim": 24})
    model = build_model(cfg)
    assert model.patch_head is not None and cfg.patch_out_dim() == 24
    masks = torch.zeros(4, 16, dtype=torch.bool)
    masks[1, 3] = True
    out = model([torch.randn(2, 3, 16, 16)] * 2, masks, parts=True)
    assert out.patch_logits.shape == (1, 24) and out.logits.shape == (4, 64)


def test_ibot_on_a_convnet_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"loss\.ibot_weight needs a ViT backbone"):
        build_config({"model": {"arch": "resnet18"}, "loss": {"ibot_weight": 1.0}})
    with pytest.raises(ConfigError, match=r"ibot\.mask_ratio"):
        build_config(None, {"ibot.mask_ratio": [0.6, 0.2]})
    assert math.isclose(build_config().ibot.mask_probability, 0.5)
