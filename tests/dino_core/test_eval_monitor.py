"""Epoch-end k-NN and attention monitors add their numbers to the epoch metrics."""

from __future__ import annotations

from pathlib import Path

import torch

from dino_core.callbacks import EpochEvent, RunInfo
from dino_core.config import DinoConfig, build_config
from dino_core.eval.monitor import AttentionMonitor, KnnMonitor
from dino_core.models import build_model
from tests.tiny import tiny_vit


def cfg_for_monitors() -> DinoConfig:
    return build_config(
        {
            "model": tiny_vit(),
            "head": {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16},
            "crops": {"global_size": 16, "local_size": 8},
            "data": {"dataset": "synthetic", "synthetic_size": 64, "synthetic_image_size": 16},
            "eval": {
                "knn_every_epochs": 2,
                "attention_every_epochs": 1,
                "knn_k": 5,
                "knn_train_limit": 20,
                "knn_test_limit": 10,
            },
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
            "train": {"epochs": 3},
        }
    )


def test_knn_monitor_runs_on_due_epochs_only() -> None:
    cfg = cfg_for_monitors()
    torch.manual_seed(0)
    teacher = build_model(cfg).backbone.train()
    mon = KnnMonitor(cfg)
    first = EpochEvent(0, 10, {"epoch_loss": 1.0}, teacher=teacher)
    assert mon.epoch_metrics(first) == {} and mon.data is None
    second = EpochEvent(1, 20, {"epoch_loss": 0.9}, teacher=teacher)
    got = mon.epoch_metrics(second)
    assert mon.data is not None and mon.data.train is not None
    assert len(mon.data.train) == 20 and len(mon.data.test) == 10
    assert 0.0 <= got["knn_top1_k5"] <= got["knn_top5_k5"] <= 100.0
    assert second.metrics == {"epoch_loss": 0.9}  # returned, not written into the event
    assert mon.history == [
        {
            "epoch": 1,
            "step": 20,
            "knn_top1_k5": got["knn_top1_k5"],
            "knn_top5_k5": got["knn_top5_k5"],
        }
    ]
    assert teacher.training  # mode restored


def test_attention_monitor_writes_figures_and_iou(tmp_path: Path) -> None:
    cfg = cfg_for_monitors()
    torch.manual_seed(0)
    teacher = build_model(cfg).backbone
    mon = AttentionMonitor(cfg)
    mon.on_train_start(RunInfo(cfg, str(tmp_path), 30, 10, 0, 0, 1, "cpu"))
    event = EpochEvent(0, 10, {}, teacher=teacher)
    got = mon.epoch_metrics(event)
    figure = tmp_path / "attention" / "epoch-0000.png"
    assert figure.is_file() and mon.history[0]["figure"] == str(figure)
    assert 0.0 <= got["attn_iou_best_head"] <= 1.0
    assert 0.0 <= got["attn_iou_mean_map"] <= 1.0
