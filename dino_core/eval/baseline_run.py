"""The k-NN baselines of a config, scored once for a whole grid (no checkpoint needed).

:func:`run_knn_baselines` scores raw pixels once and the architecture at random init once per
seed, the same way :func:`dino_core.eval.run.run_knn_eval` scores them beside a trained
checkpoint of that config (same data, transform, k and temperature, same random-init weights:
``torch.manual_seed(seed)`` then the backbone is built), so a grid's pretraining runs need not
each recompute them. Metrics: ``knn_top1_k20_raw_pixels``, ``knn_top1_k20_random_init_seed0``
(:mod:`dino_core.eval.metric_names`); report ``<out_dir>/knn_baselines.json``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from dino_core.config import ConfigError, DinoConfig
from dino_core.eval.baselines import RawPixels, random_init_backbone
from dino_core.eval.features import resolve_device
from dino_core.eval.metric_names import RANDOM_INIT, RAW_PIXELS, model_suffix
from dino_core.eval.run import DataOverrides, knn_metrics, report_header, write_report
from dino_core.eval.suite import knn_report, load_eval_data

KIND = "knn_baselines"


def run_knn_baselines(
    config: DinoConfig,
    *,
    out_dir: str | Path,
    seeds: Sequence[int] | None = None,
    data: DataOverrides | None = None,
    device: str = "auto",
    ks: Sequence[int] | None = None,
    temperature: float | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """Weighted k-NN (paper Sec. 4.1) of raw pixels and of ``config``'s backbone at random
    init from each of ``seeds`` (default: ``train.seed``); ``ks``/``temperature`` default to
    ``eval.knn_k``/``eval.knn_temperature`` as for a checkpoint of ``config``."""
    started = time.perf_counter()
    try:
        cfg = (data or DataOverrides()).apply(config)
    except ConfigError as err:
        raise ConfigError(f"data options of the k-NN baselines: {err}") from None
    ev = load_eval_data(cfg, need_train=True)
    dev = resolve_device(device)
    ks = list(ks) if ks else [cfg.eval.knn_k]
    t = temperature if temperature is not None else cfg.eval.knn_temperature
    drawn = list(dict.fromkeys(seeds)) if seeds else [cfg.train.seed]
    models: dict[str, tuple[str, int | None, nn.Module]] = {
        RAW_PIXELS: (RAW_PIXELS, None, RawPixels())
    }
    for s in drawn:
        label = model_suffix(RANDOM_INIT, s).lstrip("_")  # random_init_seed<s>
        models[label] = (RANDOM_INIT, s, random_init_backbone(cfg, s))
    result = report_header(KIND, None, None, cfg, ev, str(dev))
    result["settings"] = {"ks": ks, "temperature": t, "seeds": drawn}
    result["results"], metrics = {}, {}
    for label, (name, seed, model) in models.items():
        rep = knn_report(
            model, ev, ks=ks, temperature=t, batch_size=batch_size, device=dev,
            progress=progress, name=label,
        )  # fmt: skip
        result["results"][label] = rep
        metrics.update(knn_metrics(rep, ks, name, seed))
    result["metrics"] = metrics
    return write_report(result, Path(out_dir), KIND, started)
