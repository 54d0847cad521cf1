"""Schedule epochs of a fixed size (``train.epoch_images``), whatever the data size.

DINO v1 counts an epoch as one pass over the data, so every schedule (lr warm-up, teacher
temperature warm-up, the frozen last layer, the run's length) shrinks with the data set: a
preset tuned on 60,000 images gets 8x fewer steps on 8,000. DINOv2 (Oquab et al. 2023; its
``train.OFFICIAL_EPOCH_LENGTH``, 1,250 iterations) instead fixes the steps per epoch; here an
epoch is ``epoch_images // batch_size`` steps, so a batch-size change keeps the images an epoch
sees. A fixed-length epoch walks the underlying loader's passes back to back: schedule step ``g``
(0-based, counting from the run's start) is batch ``g mod P`` of pass ``g div P``, with ``P``
batches per pass. Passes keep their own permutation and crop seeds, so a resumed run continues
exactly, and with ``P`` steps per epoch the batches are those of the plain loader.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from dino_core.data.layout import EpochLoader, check_start


class FixedLengthEpochs:
    """``inner``'s passes, cut into epochs of ``length`` steps (an :class:`EpochLoader`)."""

    def __init__(self, inner: EpochLoader, length: int) -> None:
        if length < 1:
            raise ValueError(f"an epoch of {length} steps: train.epoch_images must hold a batch")
        self.inner = inner
        self.length = length

    def __len__(self) -> int:
        return self.length

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[list[torch.Tensor]]:
        """Steps ``start_batch`` .. ``length - 1`` of schedule epoch ``epoch``."""
        check_start(start_batch, self.length)
        per_pass = len(self.inner)
        first = epoch * self.length + start_batch
        left = self.length - start_batch
        data_pass, batch = divmod(first, per_pass)
        while left > 0:
            for crops in self.inner.epoch(data_pass, batch):
                yield crops
                left -= 1
                if left == 0:
                    return
            data_pass, batch = data_pass + 1, 0
