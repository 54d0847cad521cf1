"""Derived random seeds: every random stream of the input pipeline is a pure function of a
few integers (run seed, epoch, sample or batch index, rank), so resuming, sharding over
ranks and re-running reproduce the same crops without touching the global RNG state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

# Stream tags keep unrelated streams apart even when their integers coincide.
PERMUTATION = 1
SAMPLE_AUGMENT = 2
BATCH_AUGMENT = 3
TRAINER = 4  # the trainer's global RNGs of one rank (drop path) under torch.distributed
IBOT_MASKS = 5  # the iBOT patch masks of one step and rank (dino_core.masking)
SHARD_ORDER = 6  # the order of a shard set's shards in an epoch
SHARD_BUFFER = 7  # the shuffle buffer of one reader (rank, DataLoader worker) of a shard set

_MASK64 = (1 << 64) - 1


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from ``keys`` (order matters); negative keys are allowed."""
    words = [k & _MASK64 for k in keys]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator_for(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded by :func:`derive_seed` of ``keys``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(*keys))
    return gen


def call_seeded(fn: Callable[[], T], seed: int) -> T:
    """Run ``fn`` with the CPU global torch RNG seeded by ``seed``, restoring it afterwards.

    torchvision's transforms draw from the global RNG; this makes one call reproducible
    without disturbing the caller's random state. Only the CPU generator is seeded:
    ``torch.manual_seed`` would also seed every CUDA generator, which ``fork_rng(devices=[])``
    does not restore (and, before CUDA is initialised, queues a captured stack per call).
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return fn()
