"""Pretraining from a shard set: every image once per epoch, split over ranks and DataLoader
workers without overlap, in an order that is a pure function of (seed, epoch), resumable at
any batch.

Epoch ``e`` with global batch ``B``, ``R`` ranks (local batch ``b = B/R``), ``W`` readers per
rank (``data.num_workers``, at least 1) and ``steps = N // B`` batches:

1. the shards are permuted by (seed, e); listing their images shard after shard, in file
   order, and cutting to ``steps * B`` gives the epoch's images (the rest, under one batch,
   wait for another epoch);
2. rank ``r`` takes the contiguous ``r``-th ``steps * b`` of them;
3. its ``steps`` batches are split into ``W`` contiguous blocks; reader ``w`` reads only its
   block, as runs of consecutive images of one shard, one ranged read per run;
4. inside a block a shuffle buffer of ``data.shuffle_buffer`` images, seeded by
   (seed, e, r, w), orders the images; batch ``j`` of the block is the ``j``-th ``b`` of it;
5. the rank's batches are the blocks' batches round-robin (block 0 batch 0, block 1 batch 0,
   ..., block 0 batch 1, ...), the order in which a DataLoader returns its workers' batches.

Resuming at batch ``k``: every block starts after its batches among the first ``k``, and
DataLoader worker ``i`` serves block ``(k + i) mod W``, so the round-robin goes on where it
stopped: the batches are those of the uninterrupted epoch. The order depends on ``R``, ``W``
and the buffer size: a resume with another rank or worker count continues at the same batch
position of another order. Crops: ``per_image`` in the workers, each image seeded by
(seed, e, image id) like :class:`~dino_core.data.loader.TrainLoader`; ``batched``: the workers
decode, the main process crops each batch on the device (the GPU when there is one), seeded by
(seed, e, batch, rank).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dino_core.config import DinoConfig
from dino_core.data.layout import check_layout, check_start, crop_pipeline, one_thread
from dino_core.data.seeding import (
    BATCH_AUGMENT,
    SAMPLE_AUGMENT,
    SHARD_BUFFER,
    SHARD_ORDER,
    call_seeded,
    derive_seed,
    generator_for,
)
from dino_core.data.shards import ShardDataset, decode_image
from dino_core.storage import filesystem, join

MAX_RUN = 512  # images fetched by one ranged read (bounds a reader's memory)


def epoch_images(ds: ShardDataset, seed: int, epoch: int, used: int) -> np.ndarray:
    """Global ids of epoch ``epoch``'s first ``used`` images (steps 1 of the module doc)."""
    n_shards = len(ds.index.shards)
    order = torch.randperm(n_shards, generator=generator_for(SHARD_ORDER, seed, epoch)).numpy()
    selected = np.zeros(len(ds.index.labels), dtype=bool)
    selected[ds.ids] = True
    starts = ds.index.starts
    parts = []
    for s in order:
        ids = np.arange(starts[s], starts[s] + ds.index.shards[s].count)
        parts.append(ids[selected[ids]])
    return np.concatenate(parts)[:used]


def block_sizes(steps: int, readers: int) -> list[int]:
    """Batches of each reader's block: ``steps`` split as evenly as possible, larger first."""
    base, extra = divmod(steps, readers)
    return [base + (1 if w < extra else 0) for w in range(readers)]


def round_robin(sizes: list[int]) -> list[tuple[int, int]]:
    """(block, batch in block) of each rank batch: the blocks' batches taken in turn."""
    return [(w, j) for j in range(max(sizes, default=0)) for w, n in enumerate(sizes) if j < n]


def buffer_order(n: int, size: int, gen: np.random.Generator) -> np.ndarray:
    """Positions ``0..n-1`` as a shuffle buffer of ``size`` emits them: each step adds the next
    position and emits a random one once the buffer is full, then the rest drains at random."""
    buf: list[int] = []
    out = np.empty(n, dtype=np.int64)
    k = 0
    for pos in range(n):
        buf.append(pos)
        if len(buf) >= size:
            j = int(gen.integers(len(buf)))
            out[k], buf[j] = buf[j], buf[-1]
            buf.pop()
            k += 1
    while buf:
        j = int(gen.integers(len(buf)))
        out[k], buf[j] = buf[j], buf[-1]
        buf.pop()
        k += 1
    return out


@dataclass(frozen=True)
class Block:
    """One reader's share of a rank's epoch: its images in file order and their emit order."""

    ids: np.ndarray  # global image ids, file order
    order: np.ndarray  # positions into ``ids``, emit order
    first_batch: int  # batch of the block to start from
    rank_batches: list[int]  # the rank batch index of each of the block's batches


class _Reader:
    """Fetches a block's images by runs of one shard, one ranged read per run."""

    def __init__(self, ds: ShardDataset, ids: np.ndarray) -> None:
        self.ds, self.ids = ds, ids
        self.held: dict[int, bytes] = {}
        self.cursor = 0

    def take(self, pos: int, wanted: set[int]) -> bytes:
        while pos not in self.held:
            self._read_run(wanted)
        return self.held.pop(pos)

    def _read_run(self, wanted: set[int]) -> None:
        start = self.cursor
        if start >= len(self.ids):
            raise RuntimeError("shard reader ran past its block: an image was asked for twice")
        shard, first = self.ds.locate(int(self.ids[start]))
        end = start + 1
        while (
            end < len(self.ids)
            and end - start < MAX_RUN
            and int(self.ids[end]) == int(self.ids[end - 1]) + 1
            and first + (end - start) < shard.count
        ):
            end += 1
        last = first + (end - start) - 1
        lo, hi = shard.offsets[first], shard.offsets[last] + shard.sizes[last]
        fs, path = filesystem(join(self.ds.root, shard.name))
        data = bytes(fs.cat_file(path, start=lo, end=hi))
        for pos in range(start, end):
            if pos in wanted:
                off = shard.offsets[first + pos - start] - lo
                self.held[pos] = data[off : off + shard.sizes[first + pos - start]]
        self.cursor = end


class _EpochStream(IterableDataset[tuple[int, list[torch.Tensor]]]):
    """The rank's batches of one epoch from ``start``; each DataLoader worker serves a block.
    ``crop`` False: the decoded images instead of the per-image crops."""

    def __init__(self, loader: ShardLoader, epoch: int, start: int, crop: bool) -> None:
        self.loader, self.epoch, self.start, self.crop = loader, epoch, start, crop

    def __iter__(self) -> Iterator[tuple[int, list[torch.Tensor]]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        readers = self.loader.readers
        block = self.loader.block(self.epoch, (self.start + worker) % readers, self.start)
        yield from self.loader.block_batches(self.epoch, block, self.crop)


class ShardLoader:
    """Iterates one epoch of a shard set at a time; yields the rank's crops on device."""

    def __init__(
        self,
        cfg: DinoConfig,
        dataset: ShardDataset,
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
        self.batch_size, self.local_batch = b, b // world_size
        self.seed = cfg.train.seed
        self.workers = cfg.data.num_workers
        self.readers = max(1, self.workers)
        mixed = (
            f"images of one size, but shard set {dataset.name!r} mixes sizes"
            if dataset.index.image_size is None
            else None
        )
        self._batched, self._per_image = crop_pipeline(
            cfg, dataset.mean, dataset.std, self.device, mixed
        )

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def block(self, epoch: int, w: int, start: int) -> Block:
        """Reader ``w``'s block of this rank in ``epoch``, to be read from rank batch ``start``."""
        steps, lb = len(self), self.local_batch
        images = epoch_images(self.dataset, self.seed, epoch, steps * self.batch_size)
        mine = images[self.rank * steps * lb : (self.rank + 1) * steps * lb]
        sizes = block_sizes(steps, self.readers)
        first = sum(sizes[:w])
        ids = mine[first * lb : (first + sizes[w]) * lb]
        gen = np.random.default_rng(derive_seed(SHARD_BUFFER, self.seed, epoch, self.rank, w))
        order = buffer_order(len(ids), self.cfg.data.shuffle_buffer, gen)
        sequence = round_robin(sizes)
        rank_batches = [k for k, (blk, _) in enumerate(sequence) if blk == w]
        done = sum(1 for blk, _ in sequence[:start] if blk == w)
        return Block(ids, order, done, rank_batches)

    def block_batches(
        self, epoch: int, block: Block, crop: bool
    ) -> Iterator[tuple[int, list[torch.Tensor]]]:
        """(rank batch index, payload) of the block's batches from ``block.first_batch``; the
        payload is ``[image ids, *crops]`` (per_image and ``crop``) or ``[image ids, uint8
        images]``."""
        lb = self.local_batch
        reader = _Reader(self.dataset, block.ids)
        wanted = {int(p) for p in block.order[block.first_batch * lb :]}
        reader.cursor = min(wanted, default=len(block.ids))
        for j in range(block.first_batch, len(block.rank_batches)):
            positions = [int(p) for p in block.order[j * lb : (j + 1) * lb]]
            raw = [reader.take(p, wanted) for p in positions]
            ids = [int(block.ids[p]) for p in positions]
            payload = self._payload(epoch, ids, raw, crop)
            yield block.rank_batches[j], [torch.tensor(ids), *payload]

    def _payload(
        self, epoch: int, ids: list[int], raw: list[bytes], crop: bool
    ) -> list[torch.Tensor]:
        c = self.dataset.in_chans
        transform = self._per_image
        if transform is None or not crop:
            return [torch.stack([decode_image(r, c) for r in raw])]
        views = []
        for image_id, r in zip(ids, raw, strict=True):
            img = decode_image(r, c)
            s = derive_seed(SAMPLE_AUGMENT, self.seed, epoch, image_id)
            views.append(call_seeded(partial(transform, img), s))
        return [torch.stack([v[i] for v in views]) for i in range(transform.num_crops)]

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[list[torch.Tensor]]:
        """This rank's batches of ``epoch`` from ``start_batch`` (exact mid-epoch resume)."""
        check_start(start_batch, len(self))
        for index, payload in self._batches(epoch, start_batch, crop=True):
            if self._batched is not None:
                gen = generator_for(BATCH_AUGMENT, self.seed, epoch, index, self.rank)
                yield self._batched(payload[1], gen)
            else:
                yield payload[1:]

    def images(
        self, epoch: int, start_batch: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(image ids, uint8 images) of the same batches as :meth:`epoch`, uncropped."""
        check_start(start_batch, len(self))
        for _, payload in self._batches(epoch, start_batch, crop=False):
            yield payload[0], payload[1]

    def _batches(
        self, epoch: int, start: int, crop: bool
    ) -> Iterator[tuple[int, list[torch.Tensor]]]:
        cuda = self.device.type == "cuda"
        stream = _EpochStream(self, epoch, start, crop)
        if self.workers == 0:
            source: Iterator[tuple[int, list[torch.Tensor]]] = iter(stream)
        else:
            source = iter(
                DataLoader(stream, batch_size=None, num_workers=self.workers, pin_memory=cuda)
            )
        expected = start
        while True:
            if self.workers == 0:
                with one_thread():
                    item = next(source, None)
            else:
                item = next(source, None)
            if item is None:
                if expected != len(self):
                    raise RuntimeError(f"shard epoch {epoch} ended at batch {expected}")
                return
            index, payload = item
            if index != expected:
                raise RuntimeError(f"shard batch {index} arrived where {expected} was due")
            expected += 1
            yield index, [payload[0], *(t.to(self.device, non_blocking=cuda) for t in payload[1:])]
