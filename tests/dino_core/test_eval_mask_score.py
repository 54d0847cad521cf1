"""Jaccard of attention masks against object masks, per head, best head, mean map, background;
the masks' precision and recall and the threshold-free share of attention on the object."""

from __future__ import annotations

import pytest
import torch

from dino_core.eval.mask_score import (
    ImageMaskStats,
    image_mask_stats,
    mask_iou,
    summarize_mask_stats,
)


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
    st = image_mask_stats(maps, obj, (4, 4), threshold=0.6)
    head_iou, mean_iou = st.head_iou, st.mean_iou
    assert head_iou[:, 0].tolist() == [1.0, 1.0]
    assert head_iou[:, 1].tolist() == [0.0, 0.0]
    assert head_iou[:, 2].tolist() == [0.5, 0.5]
    # mean map = [[0.47, 0.29], [0.12, 0.12]]: 60% needs the two top patches -> IoU 1/2.
    assert mean_iou.tolist() == [0.5, 0.5]


def test_precision_recall_and_object_share() -> None:
    obj, maps = object_and_maps()
    st = image_mask_stats(maps, obj, (4, 4), threshold=0.6)
    # head 0 keeps the object patch only; head 1 two background patches; head 2 the object and
    # one background patch (precision 1/2, recall 1)
    assert st.head_precision[0].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert st.head_recall[0].tolist() == pytest.approx([1.0, 0.0, 1.0])
    assert st.head_object_share[0].tolist() == pytest.approx([0.9, 0.01, 0.5])
    assert st.object_area.tolist() == pytest.approx([0.25, 0.25])  # 16 of 64 pixels
    # the share is of the patch mass the map holds: CLS->prefix mass left out does not count
    half = image_mask_stats(maps * 0.5, obj, (4, 4), threshold=0.6)
    torch.testing.assert_close(half.head_object_share, st.head_object_share)
    # a uniform map puts chance mass on the object
    uniform = image_mask_stats(torch.ones(2, 1, 2, 2), obj, (4, 4))
    assert uniform.head_object_share[:, 0].tolist() == pytest.approx(st.object_area.tolist())


def test_object_share_splits_a_patch_over_its_pixels_and_ignores_uncovered_pixels() -> None:
    obj = torch.zeros(1, 9, 9, dtype=torch.bool)
    obj[0, :2, :4] = True  # half of the top-left 4x4 patch
    obj[0, 8, :] = True  # the 9th row: beyond the last full patch, the ViT never sees it
    maps = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    st = image_mask_stats(maps, obj, (4, 4))
    assert float(st.head_object_share[0, 0]) == pytest.approx(0.5)
    assert float(st.object_area[0]) == pytest.approx(8 / 64)
    assert float(st.head_precision[0, 0]) == pytest.approx(0.5)
    assert float(st.head_recall[0, 0]) == pytest.approx(8 / 17)  # the uncovered row is missed


def stats_of(head_iou: torch.Tensor, mean_iou: torch.Tensor) -> ImageMaskStats:
    """Statistics with the given IoUs; precision = IoU, recall = 1, share = IoU / 2."""
    return ImageMaskStats(
        head_iou=head_iou,
        mean_iou=mean_iou,
        head_precision=head_iou,
        head_recall=torch.ones_like(head_iou),
        head_object_share=head_iou / 2,
        object_area=torch.full_like(mean_iou, 0.25),
    )


def test_summary_best_head_and_backgrounds() -> None:
    head_iou = torch.tensor([[1.0, 0.0], [0.5, 0.2], [0.0, 1.0]], dtype=torch.float64)
    mean_iou = torch.tensor([0.9, 0.3, 0.6], dtype=torch.float64)
    s = summarize_mask_stats(stats_of(head_iou, mean_iou), torch.tensor([0, 0, 1]), 0.6)
    assert s.per_head == pytest.approx([0.5, 0.4])
    assert s.best_head == 0 and s.best_head_iou == pytest.approx(0.5)
    assert s.mean_map_iou == pytest.approx(0.6)
    assert s.best_head_precision == pytest.approx(0.5) and s.best_head_recall == 1.0
    assert s.object_share_per_head == pytest.approx([0.25, 0.2])
    assert s.max_object_share == pytest.approx(0.25) and s.object_area == pytest.approx(0.25)
    plain, textured = s.by_background["plain"], s.by_background["textured"]
    assert plain["n_images"] == 2 and textured["n_images"] == 1
    assert plain["per_head"] == pytest.approx([0.75, 0.1])
    assert plain["best_head_iou"] == pytest.approx(0.75)
    assert plain["object_share_per_head"] == pytest.approx([0.375, 0.05])
    assert textured["best_head_iou"] == pytest.approx(0.0)  # the overall best head, here
    assert textured["mean_map_iou"] == pytest.approx(0.6)
    d = s.to_dict()
    assert d["n_images"] == 3 and d["threshold"] == 0.6
    assert d["max_object_share"] == pytest.approx(0.25)
    assert summarize_mask_stats(stats_of(head_iou, mean_iou), None).by_background == {}
    with pytest.raises(ValueError, match="no images"):
        summarize_mask_stats(stats_of(head_iou[:0], mean_iou[:0]), None)
