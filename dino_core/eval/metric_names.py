"""How evaluation metrics are named, in one place (no torch: the summary reads these names).

A runner scores several models side by side: the trained backbone and the reference points of
:mod:`dino_core.eval.baselines`. A metric is ``<name>`` for the trained model and
``<name>_<model>`` for a reference (``knn_top1_k20_random_init``); the grid-level baseline
job scores random init once per seed and names it ``..._random_init_seed<s>``.
"""

from __future__ import annotations

from typing import Final

TRAINED: Final = "trained"
RANDOM_INIT: Final = "random_init"
RAW_PIXELS: Final = "raw_pixels"


def model_suffix(model: str, seed: int | None = None) -> str:
    """``""`` for the trained model, ``_<model>`` for a reference, ``_seed<s>`` appended when
    the reference was drawn at an explicit seed."""
    suffix = "" if model == TRAINED else f"_{model}"
    return suffix if seed is None else f"{suffix}_seed{seed}"


def knn_metric(acc: str, k: int, model: str = TRAINED, seed: int | None = None) -> str:
    """``knn_top1_k20``, ``knn_top5_k20_raw_pixels``, ``knn_top1_k20_random_init_seed2``."""
    return f"knn_{acc}_k{k}{model_suffix(model, seed)}"
