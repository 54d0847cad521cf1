"""The pretraining loader: epoch permutations, rank shares, per-image or batched crops.

Global batch ``b`` of epoch ``e`` is ``perm_e[b*B:(b+1)*B]`` with ``perm_e`` a pure function
of ``(train.seed, e)``; rank ``r`` of ``W`` takes the ``r``-th contiguous ``B/W`` of it, so
the ranks together see exactly one global batch. Per-image crops are seeded by
``(seed, epoch, sample index)`` -- identical whatever the rank count or resume point; batched
crops by ``(seed, epoch, batch index, rank)``. Incomplete last batches are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from dino_core.config import DinoConfig
from dino_core.data.base import ImageDataset
from dino_core.data.fixed_epochs import FixedLengthEpochs
from dino_core.data.layout import (
    EpochLoader,
    check_layout,
    check_start,
    crop_pipeline,
    one_thread,
)
from dino_core.data.multicrop import MultiCropTransform
from dino_core.data.seeding import (
    BATCH_AUGMENT,
    PERMUTATION,
    SAMPLE_AUGMENT,
    call_seeded,
    derive_seed,
    generator_for,
)

# Keep an in-memory data set on the accelerator when it is at most this large.
_DEVICE_CACHE_BYTES = 4 << 30


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The sample order of ``epoch`` (pure function of seed and epoch)."""
    return torch.randperm(n, generator=generator_for(PERMUTATION, seed, epoch))


class _SeededCrops(Dataset[list[torch.Tensor]]):
    """Item ``i`` -> the multi-crop views of image ``i``, seeded by (seed, epoch, i)."""

    def __init__(
        self, data: ImageDataset, transform: MultiCropTransform, seed: int, epoch: int
    ) -> None:
        self.data, self.transform, self.seed, self.epoch = data, transform, seed, epoch

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        img = self.data[index][0]
        s = derive_seed(SAMPLE_AUGMENT, self.seed, self.epoch, index)
        return call_seeded(lambda: self.transform(img), s)


class TrainLoader:
    """Iterates one epoch at a time; yields the rank's crops (globals first) on device."""

    def __init__(
        self,
        cfg: DinoConfig,
        dataset: ImageDataset,
        *,
        rank: int,
        world_size: int,
        device: torch.device | str,
    ) -> None:
        b = cfg.train.batch_size
        check_layout(b, len(dataset), dataset.name, rank, world_size)
        self.cfg, self.dataset = cfg, dataset
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.batch_size = b
        self.local_batch = b // world_size
        self.seed = cfg.train.seed
        self.pipeline = cfg.crops.pipeline
        self.num_crops = 2 + cfg.crops.local_number
        self._images: torch.Tensor | None = None
        lazy = (
            f"the images in memory, but data set {dataset.name!r} decodes files lazily"
            if dataset.images is None
            else None
        )
        self._batched, self._per_image = crop_pipeline(
            cfg, dataset.mean, dataset.std, self.device, lazy
        )

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def rank_indices(self, epoch: int, batch: int) -> torch.Tensor:
        """Data set indices of this rank's share of global batch ``batch``."""
        perm = epoch_permutation(self.seed, epoch, len(self.dataset))
        return self._share(perm, batch)

    def _share(self, perm: torch.Tensor, batch: int) -> torch.Tensor:
        start = batch * self.batch_size + self.rank * self.local_batch
        return perm[start : start + self.local_batch]

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[list[torch.Tensor]]:
        """This rank's batches of ``epoch`` from ``start_batch`` (exact mid-epoch resume)."""
        check_start(start_batch, len(self))
        perm = epoch_permutation(self.seed, epoch, len(self.dataset))
        if self._batched is not None:
            return self._batched_epoch(perm, epoch, start_batch)
        return self._per_image_epoch(perm, epoch, start_batch)

    def _device_images(self) -> torch.Tensor:
        images = self.dataset.images
        assert images is not None
        if self._images is None:
            small = images.numel() <= _DEVICE_CACHE_BYTES
            self._images = images.to(self.device) if self.device.type != "cpu" and small else images
        return self._images

    def _batched_epoch(
        self, perm: torch.Tensor, epoch: int, start: int
    ) -> Iterator[list[torch.Tensor]]:
        assert self._batched is not None
        images = self._device_images()
        for b in range(start, len(self)):
            idx = self._share(perm, b).to(images.device)
            gen = generator_for(BATCH_AUGMENT, self.seed, epoch, b, self.rank)
            yield self._batched(images[idx], gen)

    def _per_image_epoch(
        self, perm: torch.Tensor, epoch: int, start: int
    ) -> Iterator[list[torch.Tensor]]:
        assert self._per_image is not None
        order = (
            torch.cat([self._share(perm, b) for b in range(start, len(self))])
            if start < len(self)
            else torch.empty(0, dtype=torch.long)
        )
        workers = self.cfg.data.num_workers
        cuda = self.device.type == "cuda"
        loader = DataLoader(
            _SeededCrops(self.dataset, self._per_image, self.seed, epoch),
            batch_size=self.local_batch,
            sampler=order.tolist(),
            num_workers=workers,
            pin_memory=cuda,
            drop_last=True,
            # the DataLoader draws its worker base seed from this, not from the global RNG
            generator=generator_for(SAMPLE_AUGMENT, self.seed, epoch),
        )
        it = iter(loader)
        while True:
            if workers == 0:
                with one_thread():
                    crops = next(it, None)
            else:
                crops = next(it, None)
            if crops is None:
                return
            yield [c.to(self.device, non_blocking=cuda) for c in crops]


def build_train_loader(
    cfg: DinoConfig,
    dataset: ImageDataset,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
) -> EpochLoader:
    """The loader for this rank: a shard set streams through :class:`ShardLoader`, any
    other data set through :class:`TrainLoader` (see module docstring); with
    ``train.epoch_images`` their passes are cut into epochs of that many images
    (:mod:`dino_core.data.fixed_epochs`)."""
    from dino_core.data.shard_loader import ShardLoader
    from dino_core.data.shards import ShardDataset

    passes: EpochLoader
    if isinstance(dataset, ShardDataset):
        passes = ShardLoader(cfg, dataset, rank=rank, world_size=world_size, device=device)
    else:
        passes = TrainLoader(cfg, dataset, rank=rank, world_size=world_size, device=device)
    steps = cfg.train.epoch_steps
    return passes if steps is None or len(passes) == 0 else FixedLengthEpochs(passes, steps)
