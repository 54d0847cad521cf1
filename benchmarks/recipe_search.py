"""One recipe-search trial on Fashion-MNIST: a short ``train()`` plus a subset k-NN.

``python -m benchmarks.recipe_search NAME [k=v ...]`` trains ``configs/fashion_mnist_cpu.yaml``
with the overrides into ``/tmp/dino-recipe/NAME``, then scores the teacher CLS with the paper's
weighted k-NN (k=20, T=0.07) on the first 10,000 train / 2,000 test images, and appends one JSON
line (config, steps, wall time, images/s, last loss and teacher entropy, k-NN) to
``benchmarks/results/recipe_search.jsonl``. Trials are compared at equal step budgets; the
machine is shared, so wall times are indicative only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from dino_core.config import load_config
from dino_core.eval.suite import knn_report, load_eval_data
from dino_core.train import train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "recipe_search.jsonl"
PRESET = ROOT / "configs" / "fashion_mnist_cpu.yaml"


def main(argv: list[str]) -> None:
    name, overrides = argv[0], argv[1:]
    cfg = load_config(PRESET, overrides)
    out = Path("/tmp/dino-recipe") / name
    shutil.rmtree(out, ignore_errors=True)
    load1 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = train(cfg, str(out), [], resume=False)
    wall = time.perf_counter() - t0
    ev_cfg = cfg.model_copy(deep=True)
    ev_cfg.eval.knn_train_limit, ev_cfg.eval.knn_test_limit = 10000, 2000
    ev_cfg.data.limit = None
    from dino_core.eval.monitor import monitor_data
    from dino_core.models.loading import load_backbone

    assert res.checkpoint is not None
    backbone, _ = load_backbone(res.checkpoint)
    rep = knn_report(backbone, monitor_data(ev_cfg), ks=[20], temperature=0.07)["k=20"]
    row = {
        "name": name,
        "overrides": overrides,
        "status": res.status,
        "steps": res.step,
        "images_seen": res.step * cfg.train.batch_size,
        "wall_s": round(wall, 1),
        "images_per_s": round(res.step * cfg.train.batch_size / wall, 1),
        "loss": round(res.metrics.get("loss", float("nan")), 4),
        "ln_k": round(float(torch.log(torch.tensor(float(cfg.head.out_dim)))), 4),
        "teacher_entropy": round(res.metrics.get("teacher_entropy", float("nan")), 4),
        "knn_top1_k20_10k_2k": round(float(rep["top1"]), 2),
        "load1_at_start": round(load1, 2),
        "config": cfg.flat(),
    }
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "config"}))
    _ = load_eval_data  # same data path as `dino eval knn`


if __name__ == "__main__":
    main(sys.argv[1:])
