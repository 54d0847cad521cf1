"""The trainer's global random state per rank under torch.distributed.

Drop path draws from the global torch RNG of each rank, so every rank needs its own stream
and a resume must continue each one where it stopped. A fresh multi-process run seeds rank
``r`` with ``derive_seed(TRAINER, seed, r, 0)`` (:mod:`dino_core.data.seeding`: no two
ranks or steps share a stream); each checkpoint stores every rank's RNG state
(``rng_ranks``) and a resume with the same world size restores its own. A single process
keeps ``seed_everything(seed)`` and the checkpoint's ``rng``.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

from dino_core.checkpoint import rng_state, set_rng_state
from dino_core.data.seeding import TRAINER, derive_seed
from dino_core.runtime import Runtime, seed_everything


def seed_ranks(seed: int, rt: Runtime, step: int = 0) -> None:
    """Seed this process's global RNGs for a run (or a resume) starting at ``step``."""
    seed_everything(derive_seed(TRAINER, seed, rt.rank, step) if rt.distributed else seed)


def gather_rng_states(rt: Runtime) -> list[dict[str, Any]] | None:
    """Every rank's RNG state, in rank order (a collective: all ranks call it); None alone."""
    if not rt.distributed:
        return None
    states: list[Any] = [None] * rt.world_size
    dist.all_gather_object(states, rng_state())
    return states


def restore_rank_rng(ckpt: dict[str, Any], seed: int, rt: Runtime) -> None:
    """After the checkpoint's state is loaded: this rank's own RNG state when the checkpoint
    has one per rank of this world size, else a fresh per-rank stream at its step (an older
    checkpoint or another world size: the run continues, not bitwise-exact)."""
    if not rt.distributed:
        return  # the checkpoint's ``rng`` is this process's
    states = ckpt.get("rng_ranks")
    if isinstance(states, list) and len(states) == rt.world_size:
        set_rng_state(states[rt.rank])
    else:
        seed_ranks(seed, rt, int(ckpt["step"]))
