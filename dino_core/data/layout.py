"""What every pretraining loader checks and shares: the batch layout over ranks, the loader
protocol the trainer iterates, and the one-thread context for in-process per-image work."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch

from dino_core.config import DinoConfig
from dino_core.data.batched import BatchedMultiCrop
from dino_core.data.multicrop import MultiCropTransform


class EpochLoader(Protocol):
    """What the trainer needs: batches per epoch, and one epoch's crops from a batch on."""

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[list[torch.Tensor]]: ...


def check_layout(batch_size: int, n_images: int, name: str, rank: int, world_size: int) -> None:
    """The global batch must split evenly over the ranks and fit in the data set."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
    if batch_size % world_size != 0:
        raise ValueError(
            f"train.batch_size={batch_size} is not divisible by the {world_size} "
            "ranks: choose a global batch that is a multiple of the rank count"
        )
    if n_images < batch_size:
        raise ValueError(
            f"data set {name!r} has {n_images} images, fewer than "
            f"train.batch_size={batch_size}: lower the batch size or use more data"
        )


def check_start(start_batch: int, n_batches: int) -> None:
    if not 0 <= start_batch <= n_batches:
        raise ValueError(f"start_batch={start_batch} outside [0, {n_batches}] batches")


def crop_pipeline(
    cfg: DinoConfig,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    batched_refusal: str | None,
) -> tuple[BatchedMultiCrop | None, MultiCropTransform | None]:
    """The batched crops (on ``device``) or the per-image ones, as ``crops.pipeline`` says;
    ``batched_refusal`` is why this data cannot be cropped in batches (None: it can)."""
    in_chans = cfg.model.in_chans
    if cfg.crops.pipeline != "batched":
        return None, MultiCropTransform(cfg.crops, mean, std, in_chans)
    if batched_refusal is not None:
        raise ValueError(
            f"crops.pipeline='batched' needs {batched_refusal}: use crops.pipeline='per_image'"
        )
    return BatchedMultiCrop(cfg.crops, mean, std, in_chans, device), None


@contextmanager
def one_thread() -> Iterator[None]:
    """Tiny per-image ops run faster on one intra-op thread than on several."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
