"""Which config fields decide a baseline's score, so a grid scores each baseline once.

The random-init and raw-pixel references of :mod:`dino_core.eval.baselines` depend on the
architecture (``model.*``, built at ``crops.global_size``), the data (``data.*`` but the loader's
worker count), the k-NN settings (``eval.knn_k``, ``eval.knn_temperature``) and, for random init,
``train.seed``. Combinations of a grid that agree on these fields share one baseline
evaluation; the seed is kept apart because the baseline job draws random init once per seed.
No torch here: the orchestrator groups combinations with it at submit time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from dino_core.config import flatten

SECTIONS: Final = ("model.", "data.")
FIELDS: Final = frozenset({"crops.global_size", "eval.knn_k", "eval.knn_temperature"})
IGNORED: Final = frozenset({"data.num_workers"})  # how fast images load, not which


def decides_baseline(field: str) -> bool:
    """Whether the dotted config ``field`` changes a baseline's score (``train.seed`` is
    handled per seed, so it does not)."""
    return field not in IGNORED and (field in FIELDS or field.startswith(SECTIONS))


def baseline_key(config: Mapping[str, Any]) -> str:
    """12 hex digits naming the baseline of a resolved config (``DinoConfig.to_dict()``)."""
    picked = {k: v for k, v in flatten(dict(config)).items() if decides_baseline(k)}
    canon = json.dumps(picked, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:12]
