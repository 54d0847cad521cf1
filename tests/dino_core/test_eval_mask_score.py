"""Jaccard of attention masks against object masks, per head, best head, mean map, background."""

from __future__ import annotations

import pytest
import torch

from dino_core.eval.mask_score import image_ious, mask_iou, summarize_ious


def test_mask_iou_hand_values() -> None:
    a = torch.zeros(4, 4, dtype=torch.bool)
    a[:2, :2] = True  # 4 pixels
    b = torch.zeros(4, 4, dtype=torch.bool)
    b[1:3, 1:3] = True  # 4 pixels, 1 shared
    assert float(mask_iou(a, a)) == 1.0
    assert float(mask_iou(a, ~a)) == 0.0
    assert float(mask_iou(a, b)) == pytest.approx(1 / 7)
    empty = torch.zeros(4, 4, dtype=torch.bool)
    assert float(mask_iou(empty, empty)) == 1.0
    assert mask_iou(torch.stack([a, a]), torch.stack([a, b])).tolist() == pytest.approx([1, 1 / 7])


def object_and_maps() -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 images, patch 4 (2x2 grid); the object fills the top-left patch exactly."""
    obj = torch.zeros(2, 8, 8, dtype=torch.bool)
    obj[:, :4, :4] = True
    maps = torch.zeros(2, 3, 2, 2)
    maps[:, 0] = torch.tensor([[0.9, 0.04], [0.03, 0.03]])  # head 0: on the object
    maps[:, 1] = torch.tensor([[0.01, 0.33], [0.33, 0.33]])  # head 1: disjoint
    maps[:, 2] = torch.tensor([[0.5, 0.5], [0.0, 0.0]])  # head 2: object + one patch
    return obj, maps


def test_perfect_disjoint_and_partial_heads() -> None:
    obj, maps = object_and_maps()
    head_iou, mean_iou = image_ious(maps, obj, (4, 4), threshold=0.6)
    assert head_iou[:, 0].tolist() == [1.0, 1.0]
    assert head_iou[:, 1].tolist() == [0.0, 0.0]
    assert head_iou[:, 2].tolist() == [0.5, 0.5]
    # mean map = [[0.47, 0.29], [0.12, 0.12]]: 60% needs the two top patches -> IoU 1/2.
    assert mean_iou.tolist() == [0.5, 0.5]


def test_summary_best_head_and_backgrounds() -> None:
    head_iou = torch.tensor([[1.0, 0.0], [0.5, 0.2], [0.0, 1.0]], dtype=torch.float64)
    mean_iou = torch.tensor([0.9, 0.3, 0.6], dtype=torch.float64)
    s = summarize_ious(head_iou, mean_iou, torch.tensor([0, 0, 1]), threshold=0.6)
    assert s.per_head == pytest.approx([0.5, 0.4])
    assert s.best_head == 0 and s.best_head_iou == pytest.approx(0.5)
    assert s.mean_map_iou == pytest.approx(0.6)
    plain, textured = s.by_background["plain"], s.by_background["textured"]
    assert plain["n_images"] == 2 and textured["n_images"] == 1
    assert plain["per_head"] == pytest.approx([0.75, 0.1])
    assert plain["best_head_iou"] == pytest.approx(0.75)
    assert textured["best_head_iou"] == pytest.approx(0.0)  # the overall best head, here
    assert textured["mean_map_iou"] == pytest.approx(0.6)
    d = s.to_dict()
    assert d["n_images"] == 3 and d["threshold"] == 0.6
    assert summarize_ious(head_iou, mean_iou, None).by_background == {}
    with pytest.raises(ValueError, match="no images"):
        summarize_ious(head_iou[:0], mean_iou[:0], None)
