"""Linear probe on frozen features (paper Sec. 4.1, official ``eval_linear.py`` recipe).

Features are computed once and kept in memory; only a ``Linear(D, C)`` layer is trained: SGD
with momentum 0.9, no weight decay, base lr 0.001 per 256 images scaled by ``batch/256``, cosine
annealed to 0 over the epochs, weights drawn from N(0, 0.01) and zero bias (official
defaults). The test top-1 is measured after every ``eval_every`` epochs; the best and the
final values are both reported (the paper reports the best). A seed fixes the init and the
shuffling, so two runs on the same features give identical numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from dino_core.eval.knn import topk_accuracy


@dataclass(frozen=True)
class LinearProbeConfig:
    """Hyper-parameters of the probe (defaults: official ``eval_linear.py``)."""

    epochs: int = 100  # official 100
    batch_size: int = 256
    lr: float = 0.001  # per 256 images, official 0.001
    momentum: float = 0.9  # official 0.9
    weight_decay: float = 0.0  # official 0
    seed: int = 0
    eval_every: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("linear probe epochs, batch_size and eval_every must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"linear probe lr={self.lr} must be > 0")


@dataclass
class LinearProbeResult:
    """Test accuracies in percent."""

    best_top1: float
    best_epoch: int  # 1-based epoch of the best top-1
    final_top1: float
    final_top5: float
    effective_lr: float  # lr * batch_size / 256
    n_train: int
    n_test: int
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, top-1)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["history"] = [list(h) for h in self.history]
        return d


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing from ``base_lr`` (epoch 0) towards 0 (per epoch, as the official code)."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))


def _labelled(x: torch.Tensor, y: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if x.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{name} features must be [N, D] with one label per row")
    keep = y >= 0
    if not bool(keep.any()):
        raise ValueError(f"no labelled {name} images: the linear probe needs labels")
    return x[keep].float(), y[keep].long()


def train_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    config: LinearProbeConfig | None = None,
    device: str | torch.device | None = None,
) -> LinearProbeResult:
    """Train a linear classifier on fixed features and report test top-1 (best and final)."""
    cfg = config or LinearProbeConfig()
    xtr, ytr = _labelled(train_features, train_labels, "train")
    xte, yte = _labelled(test_features, test_labels, "test")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"train features have dim {xtr.shape[1]}, test features dim {xte.shape[1]}"
        )
    n_cls = num_classes if num_classes is not None else int(max(ytr.max(), yte.max())) + 1
    if int(max(ytr.max(), yte.max())) >= n_cls:
        raise ValueError(f"a label is >= num_classes={n_cls}")
    dev = torch.device(device) if device is not None else xtr.device
    xtr, ytr, xte, yte = xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev)

    gen = torch.Generator().manual_seed(cfg.seed)
    # Built by hand (not nn.Linear) so the global RNG is left untouched.
    weight = torch.nn.Parameter((torch.randn(n_cls, xtr.shape[1], generator=gen) * 0.01).to(dev))
    bias = torch.nn.Parameter(torch.zeros(n_cls, device=dev))

    def layer(x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, bias)

    base_lr = cfg.lr * cfg.batch_size / 256.0
    opt = torch.optim.SGD(
        [weight, bias], lr=base_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )

    history: list[tuple[int, float]] = []
    best_top1, best_epoch = -1.0, 0
    top1 = top5 = 0.0
    n = xtr.shape[0]
    for epoch in range(cfg.epochs):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(base_lr, epoch, cfg.epochs)
        order = torch.randperm(n, generator=gen).to(dev)
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            loss = F.cross_entropy(layer(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        last = epoch + 1 == cfg.epochs
        if (epoch + 1) % cfg.eval_every == 0 or last:
            with torch.no_grad():
                top1, top5 = topk_accuracy(layer(xte), yte)
            history.append((epoch + 1, top1))
            if top1 > best_top1:
                best_top1, best_epoch = top1, epoch + 1
    return LinearProbeResult(
        best_top1=best_top1,
        best_epoch=best_epoch,
        final_top1=top1,
        final_top5=top5,
        effective_lr=base_lr,
        n_train=int(n),
        n_test=int(xte.shape[0]),
        history=history,
    )
