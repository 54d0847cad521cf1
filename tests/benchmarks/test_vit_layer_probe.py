"""The ViT layer probe scores every block's CLS and mean patch token and the patch embedding,
for random init and the chosen checkpoints of a run; a ConvNet run is refused by name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import benchmarks._common as common
from benchmarks.vit_layer_probe import main
from dino_core.config import build_config
from dino_core.train import train
from tests.tiny import tiny_vit

RUN = {
    "model": tiny_vit(conv_stem=[4]),
    "head": {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16},
    "crops": {"global_size": 16, "local_number": 0, "pipeline": "batched"},
    "data": {"dataset": "synthetic", "synthetic_size": 48, "synthetic_image_size": 16},
    "optim": {"warmup_epochs": 0},
    "loss": {"warmup_teacher_temp_epochs": 0},
    "train": {
        "epochs": 1,
        "batch_size": 16,
        "threads": 1,
        "checkpoint_every_steps": 1,
        "keep_checkpoints": 10,
    },
}


def probe(monkeypatch: pytest.MonkeyPatch, out: Path, *args: str) -> None:
    monkeypatch.setattr(common, "RESULTS", out)
    monkeypatch.setattr(sys, "argv", ["vit_layer_probe", *args])
    main()


def test_every_block_for_random_init_and_the_chosen_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    train(build_config(RUN), str(run), [], resume=False)
    probe(monkeypatch, tmp_path / "res", "--run-dir", str(run), "--name", "p")
    res = json.loads((tmp_path / "res" / "p.json").read_text())
    rows = res["knn_top1"]
    assert list(rows) == ["random init", "step 1", "step 3"]  # first and last of 3 steps
    for row in rows.values():
        assert list(row) == ["patch_embed", "cls_0", "patchmean_0", "cls_1", "patchmean_1"]
        assert all(0.0 <= v <= 100.0 for v in row.values())
    assert res["machine"]["cpu"] and res["config"]["model.conv_stem"] == [4]
    md = (tmp_path / "res" / "p.md").read_text()
    assert "| feature | random init | step 1 | step 3 |" in md and "| cls_1 |" in md

    with pytest.raises(SystemExit, match=r"--steps \[7\]: no such checkpoint .*\[1, 2, 3\]"):
        probe(monkeypatch, tmp_path / "res", "--run-dir", str(run), "--steps", "7")


def test_a_convnet_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {**RUN, "model": {"arch": "resnet10t", "in_chans": 3, "drop_path_rate": 0.0}}
    run = tmp_path / "run"
    train(build_config(cfg), str(run), [], resume=False)
    with pytest.raises(SystemExit, match="the layer probe needs a ViT backbone, got ResNet"):
        probe(monkeypatch, tmp_path / "res", "--run-dir", str(run), "--steps", "3")
