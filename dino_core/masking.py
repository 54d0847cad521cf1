"""Block-wise random masks of patch tokens for the iBOT loss.

As in DINOv2 (Oquab et al. 2023, arXiv 2304.07193; ``ssl_default_config.yaml``: mask ratio
0.1-0.5, sample probability 0.5), after BEiT (Bao et al. 2022, arXiv 2106.08254, Alg. 1):
of the ``n`` global crops of a batch, ``int(n x probability)`` are masked; their target ratios
are spread over ``[min, max]`` (the i-th drawn uniformly from the i-th of as many equal
sub-intervals), so the masked images cover the whole range in every batch; the rest are not
masked, and the order is shuffled. An image's mask is a union of rectangles of at least
``MIN_BLOCK_PATCHES`` patches (fewer when fewer remain) and aspect ratio in
``[MIN_ASPECT, 1 / MIN_ASPECT]``, each at most ``MAX_BLOCK_SHARE`` of the grid, added until
exactly ``int(N x ratio)`` of the N patches are masked (where no rectangle fits the remainder
after ``BLOCK_ATTEMPTS`` draws, a single patch is added instead).

The masks of a step are a pure function of (run seed, step, rank): resuming reproduces them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dino_core.data.seeding import IBOT_MASKS, derive_seed

MIN_BLOCK_PATCHES = 4  # BEiT / DINOv2 MaskingGenerator min_num_patches
MIN_ASPECT = 0.3  # BEiT / DINOv2 min_aspect (max aspect 1 / 0.3)
MAX_BLOCK_SHARE = 0.5  # DINOv2 train.py: max_num_patches = 0.5 x patches
BLOCK_ATTEMPTS = 10  # BEiT / DINOv2: draws per rectangle


def block_mask(height: int, width: int, n_masked: int, rng: np.random.Generator) -> np.ndarray:
    """A ``[height, width]`` boolean mask with exactly ``n_masked`` patches set."""
    n_patches = height * width
    if not 0 <= n_masked <= n_patches:
        raise ValueError(f"cannot mask {n_masked} of {n_patches} patches")
    mask = np.zeros((height, width), dtype=bool)
    max_block = max(1, int(MAX_BLOCK_SHARE * n_patches))
    log_aspect = (math.log(MIN_ASPECT), -math.log(MIN_ASPECT))
    count = 0
    while count < n_masked:
        remaining = n_masked - count
        largest = min(remaining, max_block)
        added = 0
        for _ in range(BLOCK_ATTEMPTS):
            area = rng.uniform(min(MIN_BLOCK_PATCHES, largest), largest)
            aspect = math.exp(rng.uniform(*log_aspect))
            h = min(height, max(1, round(math.sqrt(area * aspect))))
            w = min(width, max(1, round(math.sqrt(area / aspect))))
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            block = mask[top : top + h, left : left + w]
            new = int(h * w - block.sum())
            if 0 < new <= remaining:
                block[...] = True
                added = new
                break
        if added == 0:  # no rectangle fits what is left: one free patch
            free = np.flatnonzero(~mask)
            mask.flat[free[int(rng.integers(0, len(free)))]] = True
            added = 1
        count += added
    return mask


def batch_masks(
    n_images: int,
    grid: tuple[int, int],
    ratio: tuple[float, float],
    probability: float,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Masks ``[n_images, h x w]`` (bool, row-major patches) for one batch of global crops."""
    height, width = grid
    n_patches = height * width
    n_masked = int(n_images * probability)
    bounds = np.linspace(ratio[0], ratio[1], n_masked + 1)
    masks = [
        block_mask(height, width, int(n_patches * rng.uniform(bounds[i], bounds[i + 1])), rng)
        for i in range(n_masked)
    ]
    masks += [np.zeros((height, width), dtype=bool)] * (n_images - n_masked)
    order = rng.permutation(n_images)
    stacked = np.stack(masks)[order].reshape(n_images, n_patches)
    return torch.from_numpy(stacked)


def step_masks(
    seed: int,
    step: int,
    rank: int,
    n_images: int,
    grid: tuple[int, int],
    ratio: tuple[float, float],
    probability: float,
) -> torch.Tensor:
    """:func:`batch_masks` for global step ``step`` of rank ``rank`` (no global RNG used)."""
    rng = np.random.default_rng(derive_seed(IBOT_MASKS, seed, step, rank))
    return batch_masks(n_images, grid, ratio, probability, rng)
