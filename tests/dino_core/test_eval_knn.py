"""Weighted k-NN (paper Sec. 4.1) against a brute-force reference."""

from __future__ import annotations

import math

import pytest
import torch

from dino_core.eval.knn import knn_classify, knn_predict_scores, topk_accuracy


def brute_force_scores(
    train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, k: int, t: float, c: int
) -> torch.Tensor:
    """Loop-by-loop reference: cosine similarity, k best, exp(s/T) votes."""
    out = torch.zeros(test.shape[0], c, dtype=torch.float64)
    for i in range(test.shape[0]):
        q = test[i].double()
        sims = []
        for j in range(train.shape[0]):
            x = train[j].double()
            sims.append((float(q @ x / (q.norm() * x.norm())), j))
        sims.sort(key=lambda p: -p[0])
        for s, j in sims[:k]:
            out[i, int(labels[j])] += math.exp(s / t)
    return out


def test_scores_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    train = torch.randn(40, 8, generator=g)
    labels = torch.randint(0, 4, (40,), generator=g)
    test = torch.randn(9, 8, generator=g)
    got = knn_predict_scores(train, labels, test, ks=(1, 5, 20), temperature=0.07, num_classes=4)
    for k in (1, 5, 20):
        ref = brute_force_scores(train, labels, test, k, 0.07, 4)
        torch.testing.assert_close(got[k].double(), ref, rtol=1e-4, atol=1e-6)


def test_chunk_sizes_do_not_change_results() -> None:
    g = torch.Generator().manual_seed(1)
    train = torch.randn(103, 16, generator=g)
    labels = torch.randint(0, 7, (103,), generator=g)
    test = torch.randn(37, 16, generator=g)
    test_labels = torch.randint(0, 7, (37,), generator=g)
    ref = knn_predict_scores(train, labels, test, ks=(3, 10), num_classes=7)
    ref_acc = knn_classify(train, labels, test, test_labels, ks=(3, 10))
    for qc, tc in [(1, 1), (5, 7), (36, 102), (1000, 1000)]:
        got = knn_predict_scores(
            train, labels, test, ks=(3, 10), num_classes=7, query_chunk=qc, train_chunk=tc
        )
        for k in (3, 10):
            torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6)
        acc = knn_classify(
            train, labels, test, test_labels, ks=(3, 10), query_chunk=qc, train_chunk=tc
        )
        assert acc == ref_acc


def test_five_test_images_three_classes() -> None:
    # Three well-separated clusters; the official script's chunking fails under 100 queries.
    centers = torch.eye(3, 6) * 10
    g = torch.Generator().manual_seed(2)
    train = torch.cat([centers[c] + 0.1 * torch.randn(4, 6, generator=g) for c in range(3)])
    train_labels = torch.arange(3).repeat_interleave(4)
    test_labels = torch.tensor([0, 1, 2, 2, 1])
    test = centers[test_labels] + 0.1 * torch.randn(5, 6, generator=g)
    res = knn_classify(train, train_labels, test, test_labels, ks=(20, 1))
    assert res[20].top1 == 100.0 and res[1].top1 == 100.0
    assert res[20].k_used == 12  # k clipped to the 12 training images
    assert res[20].n_test == 5
    assert res[20].top5 == 100.0  # fewer than 5 classes: top-5 covers them all


def test_wrong_neighbours_give_zero_and_unknown_labels_are_skipped() -> None:
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    train_labels = torch.tensor([0, 1, -1])  # the third is unlabelled and must not vote
    test = torch.tensor([[1.0, 0.05], [0.0, 1.0], [5.0, 5.0]])
    test_labels = torch.tensor([1, 0, -1])  # both scored queries are wrong
    res = knn_classify(train, train_labels, test, test_labels, ks=(1,))
    assert res[1].top1 == 0.0 and res[1].n_test == 2
    scores = knn_predict_scores(train, train_labels, test[:1], ks=(3,), temperature=0.5)
    # k=3 but only 2 labelled neighbours: exp(cos/T) for each.
    c0 = torch.nn.functional.cosine_similarity(test[:1], train[:1]).item()
    c1 = torch.nn.functional.cosine_similarity(test[:1], train[1:2]).item()
    expected = torch.tensor([[math.exp(c0 / 0.5), math.exp(c1 / 0.5)]])
    torch.testing.assert_close(scores[3], expected)


def test_topk_accuracy_hand_case() -> None:
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.05, 0.04, 0.03, 0.02],  # label 0 ranks 1st
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # label 1 ranks 5th
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 5 ranks 6th
        ]
    )
    labels = torch.tensor([0, 1, 5])
    top1, top5 = topk_accuracy(scores, labels)
    assert top1 == pytest.approx(100 / 3)
    assert top5 == pytest.approx(200 / 3)


def test_errors_name_the_problem() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="no labelled training"):
        knn_predict_scores(x, torch.full((4,), -1), x)
    with pytest.raises(ValueError, match="dim"):
        knn_predict_scores(x, torch.zeros(4, dtype=torch.long), torch.randn(2, 5))
    with pytest.raises(ValueError, match="temperature"):
        knn_predict_scores(x, torch.zeros(4, dtype=torch.long), x, temperature=0.0)
