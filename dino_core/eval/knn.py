"""Weighted k-nearest-neighbour classifier on frozen features (paper Sec. 4.1).

Each test feature retrieves its ``k`` most similar training features by cosine similarity;
neighbour ``j`` votes for its class with weight ``exp(s_j / T)``. The paper uses ``k=20`` and
``T=0.07`` on L2-normalised teacher CLS features. Unlike the official script, any number of
test images works (no fixed number of chunks), several ``k`` share one top-k search, and
memory is bounded: similarities are computed for ``query_chunk x train_chunk`` blocks with a
running top-k merge, so a block never holds more than ``query_chunk * (train_chunk + k)``
scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAPER_K = 20  # paper Sec. 4.1
PAPER_TEMPERATURE = 0.07  # paper Sec. 4.1


@dataclass(frozen=True)
class KnnScore:
    """Accuracy (percent) of one ``k`` on the labelled test images."""

    k: int  # requested k
    k_used: int  # min(k, number of labelled training images)
    top1: float
    top5: float
    n_test: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "k": self.k,
            "k_used": self.k_used,
            "top1": self.top1,
            "top5": self.top5,
            "n_test": self.n_test,
        }


def _topk_neighbours(
    train: torch.Tensor, queries: torch.Tensor, k: int, train_chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarities and indices of the ``k`` most similar rows of ``train`` (descending)."""
    best_sim = queries.new_full((queries.shape[0], 0), float("-inf"))
    best_idx = torch.empty((queries.shape[0], 0), dtype=torch.long, device=queries.device)
    for start in range(0, train.shape[0], train_chunk):
        block = train[start : start + train_chunk]
        sim = queries @ block.T
        idx = torch.arange(start, start + block.shape[0], device=queries.device)
        cand_sim = torch.cat([best_sim, sim], dim=1)
        cand_idx = torch.cat([best_idx, idx.expand(queries.shape[0], -1)], dim=1)
        take = min(k, cand_sim.shape[1])
        best_sim, pos = cand_sim.topk(take, dim=1, largest=True, sorted=True)
        best_idx = cand_idx.gather(1, pos)
    return best_sim, best_idx


def knn_predict_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    *,
    ks: Sequence[int] = (PAPER_K,),
    temperature: float = PAPER_TEMPERATURE,
    num_classes: int | None = None,
    query_chunk: int = 256,
    train_chunk: int = 65536,
    normalize: bool = True,
) -> dict[int, torch.Tensor]:
    """Class scores ``[n_test, C]`` for every ``k`` in ``ks`` from one neighbour search.

    Training rows with label ``-1`` (unknown) are ignored. Features are L2-normalised first
    when ``normalize`` is True, so the dot product is the cosine similarity.
    """
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks={list(ks)} must be a non-empty list of positive integers")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0 (paper: 0.07)")
    if query_chunk < 1 or train_chunk < 1:
        raise ValueError("query_chunk and train_chunk must be >= 1")
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise ValueError("features must be 2-D [N, D] tensors")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train features have dim {train_features.shape[1]} but test features have "
            f"dim {test_features.shape[1]}: extract both with the same model"
        )
    if train_labels.shape[0] != train_features.shape[0]:
        raise ValueError("train_labels must have one label per training feature")
    known = train_labels >= 0
    train = train_features[known].float()
    labels = train_labels[known].long().to(train.device)
    if train.shape[0] == 0:
        raise ValueError("no labelled training images: k-NN needs labels (label -1 = unknown)")
    n_cls = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    if int(labels.max()) >= n_cls:
        raise ValueError(f"a training label is >= num_classes={n_cls}")
    queries_all = test_features.float().to(train.device)
    if normalize:
        train = F.normalize(train, dim=1)
        queries_all = F.normalize(queries_all, dim=1)
    k_max = min(max(ks), train.shape[0])
    out = {k: train.new_zeros((queries_all.shape[0], n_cls)) for k in ks}
    for start in range(0, queries_all.shape[0], query_chunk):
        queries = queries_all[start : start + query_chunk]
        sim, idx = _topk_neighbours(train, queries, k_max, train_chunk)
        weights = (sim / temperature).exp()
        votes = labels[idx]  # [q, k_max], neighbours most similar first
        for k in ks:
            kk = min(k, k_max)
            out[k][start : start + queries.shape[0]].scatter_add_(1, votes[:, :kk], weights[:, :kk])
    return out


def knn_classify(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    ks: Sequence[int] = (PAPER_K,),
    temperature: float = PAPER_TEMPERATURE,
    num_classes: int | None = None,
    query_chunk: int = 256,
    train_chunk: int = 65536,
    normalize: bool = True,
) -> dict[int, KnnScore]:
    """Top-1 / top-5 accuracy (percent) of the weighted k-NN for each ``k`` in ``ks``.

    Test rows with label ``-1`` are not scored. With fewer than 5 classes, top-5 counts the
    classes there are (and is therefore 100%).
    """
    if test_labels.shape[0] != test_features.shape[0]:
        raise ValueError("test_labels must have one label per test feature")
    scored = test_labels >= 0
    if not bool(scored.any()):
        raise ValueError("no labelled test images: k-NN accuracy needs labels (-1 = unknown)")
    labels_max = int(max(int(train_labels.max()), int(test_labels.max())))
    n_cls = int(num_classes) if num_classes is not None else labels_max + 1
    scores = knn_predict_scores(
        train_features,
        train_labels,
        test_features[scored],
        ks=ks,
        temperature=temperature,
        num_classes=n_cls,
        query_chunk=query_chunk,
        train_chunk=train_chunk,
        normalize=normalize,
    )
    n_train = int((train_labels >= 0).sum())
    truth = test_labels[scored].long()
    results: dict[int, KnnScore] = {}
    for k, s in scores.items():
        top1, top5 = topk_accuracy(s, truth.to(s.device))
        results[k] = KnnScore(k, min(k, n_train), top1, top5, int(truth.shape[0]))
    return results


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Top-1 and top-5 accuracy in percent of class ``scores [N, C]`` against ``labels``."""
    if labels.numel() == 0:
        raise ValueError("cannot compute accuracy on zero labelled images")
    top = scores.topk(min(5, scores.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    top1 = 100.0 * hit[:, 0].double().mean().item()
    top5 = 100.0 * hit.any(dim=1).double().mean().item()
    return top1, top5
