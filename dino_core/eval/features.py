"""Frozen features of a backbone, batched, on any device (paper Sec. 4.1).

k-NN uses the L2-normalised CLS feature (``backbone(x)``). The linear probe may use the
concatenated CLS tokens of the last ``n`` blocks, each passed through the final norm, plus the
average-pooled patch tokens of the last block (official ``eval_linear.py``: ViT-S uses the last
4 blocks without pooling, ViT-B the last block with pooling).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from tqdm.auto import tqdm

PAPER_VIT_S_LAST_BLOCKS = 4  # official eval_linear.py, ViT-S


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None: CUDA when available, else CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available: use cpu")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for parameter-free modules)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the block; its previous train/eval mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def default_last_blocks(model: nn.Module) -> int:
    """Paper's choice: last 4 blocks for ViTs (ViT-S), the pooled feature otherwise."""
    if isinstance(model, VisionTransformer):
        return min(PAPER_VIT_S_LAST_BLOCKS, len(model.blocks))
    return 1


def probe_features(
    model: nn.Module, x: torch.Tensor, n_last_blocks: int = 1, avgpool_patchtokens: bool = False
) -> torch.Tensor:
    """Features ``[B, D']`` of one batch; ``n_last_blocks=1`` without pooling is ``model(x)``."""
    if n_last_blocks < 1:
        raise ValueError(f"n_last_blocks={n_last_blocks} must be >= 1")
    if n_last_blocks == 1 and not avgpool_patchtokens:
        out: torch.Tensor = model(x)
        return out
    if not isinstance(model, VisionTransformer):
        raise ValueError(
            f"n_last_blocks={n_last_blocks} / avgpool_patchtokens need a timm "
            f"VisionTransformer, got {type(model).__name__}: use n_last_blocks=1"
        )
    if n_last_blocks > len(model.blocks):
        raise ValueError(
            f"n_last_blocks={n_last_blocks} exceeds the model depth {len(model.blocks)}"
        )
    if model.cls_token is None:
        raise ValueError("the ViT has no CLS token: concatenated CLS features are undefined")
    layers: list[tuple[torch.Tensor, torch.Tensor]] = model.forward_intermediates(  # type: ignore[assignment]
        x,
        indices=n_last_blocks,
        return_prefix_tokens=True,
        norm=True,
        output_fmt="NLC",
        intermediates_only=True,
    )
    parts = [prefix[:, 0] for _, prefix in layers]
    if avgpool_patchtokens:
        parts.append(layers[-1][0].mean(dim=1))
    return torch.cat(parts, dim=-1)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: str | torch.device | None = None,
    n_last_blocks: int = 1,
    avgpool_patchtokens: bool = False,
    normalize: bool = True,
    total_batches: int | None = None,
    progress: bool = False,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``[N, D]`` (float32, CPU) and labels ``[N]`` of every batch.

    ``device=None`` keeps the model where it is; otherwise the model is moved there. The
    model's train/eval mode is restored afterwards (features are always taken in eval mode).
    ``normalize`` L2-normalises each row (k-NN); the linear probe uses raw features.
    """
    dev = model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    feats: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    bar = tqdm(batches, desc=desc, total=total_batches, disable=not progress, unit="batch")
    try:
        with eval_mode(model):
            for images, y in bar:
                f = probe_features(model, images.to(dev), n_last_blocks, avgpool_patchtokens)
                feats.append(f.float().cpu())
                labels.append(torch.as_tensor(y).long().cpu())
    finally:
        bar.close()
    if not feats:
        raise ValueError(f"no images to extract {desc} from: the dataset is empty")
    out = torch.cat(feats)
    if normalize:
        out = F.normalize(out, dim=1)
    return out, torch.cat(labels)
