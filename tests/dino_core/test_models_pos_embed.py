"""``model.pos_embed: sincos``: MoCo v3's fixed 2-D sin-cos position table, frozen in training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dino_core.checkpoint import list_checkpoints
from dino_core.config import ConfigError, ModelConfig, build_config
from dino_core.models import build_backbone
from dino_core.models.loading import load_backbone
from dino_core.models.pos_embed import sincos_table
from dino_core.train import train
from tests.tiny import tiny_vit


def vit(pos_embed: str, registers: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="vit_custom",
        patch_size=4,
        embed_dim=16,
        depth=1,
        num_heads=2,
        num_registers=registers,
        pos_embed=pos_embed,
    )
    return build_backbone(cfg, 16)[0]


def test_the_table_holds_sin_and_cos_of_column_then_row() -> None:
    table = sincos_table(3, 4, 8)  # 3 rows, 4 columns; quarters of 2: x sin, x cos, y sin, y cos
    assert table.shape == (12, 8)
    row1_col2 = table[1 * 4 + 2]
    omega = [1.0, 1.0 / 100.0]  # 1 / 10000^(k/2), k = 0, 1
    want = [math.sin(2 * w) for w in omega] + [math.cos(2 * w) for w in omega]
    want += [math.sin(1 * w) for w in omega] + [math.cos(1 * w) for w in omega]
    torch.testing.assert_close(row1_col2, torch.tensor(want))
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_table(2, 2, 6)


def test_the_vit_gets_the_frozen_table_and_zero_prefix_rows() -> None:
    model = vit("sincos")
    pe = model.pos_embed
    assert not pe.requires_grad and pe.shape == (1, 1 + 2 + 16, 16)
    assert torch.count_nonzero(pe[0, :3]) == 0  # CLS and the 2 registers
    torch.testing.assert_close(pe[0, 3:], sincos_table(4, 4, 16))
    learned = vit("learn").pos_embed
    assert learned.requires_grad and not torch.equal(learned[0, 3:], pe[0, 3:])
    # local crops: timm resamples the table for an 8 px crop's 2 x 2 grid
    assert model.forward_features(torch.randn(2, 3, 8, 8)).shape == (2, 1 + 2 + 4, 16)


def test_training_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    cfg = build_config(
        {
            "model": tiny_vit(pos_embed="sincos"),
            "head": {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16},
            "crops": {"global_size": 16, "local_number": 2, "local_size": 8},
            "data": {"dataset": "synthetic", "synthetic_size": 32, "synthetic_image_size": 16},
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
            "train": {"epochs": 1, "batch_size": 16, "threads": 1},
        }
    )
    train(cfg, str(tmp_path), [], resume=False)
    last = list_checkpoints(str(tmp_path))[-1]
    teacher, _ = load_backbone(last)
    student, _ = load_backbone(last, which="student")
    for model in (teacher, student):
        torch.testing.assert_close(model.pos_embed[0, 1:], sincos_table(4, 4, 32))


def test_sincos_is_refused_where_it_cannot_apply() -> None:
    with pytest.raises(ConfigError, match=r"model.pos_embed=sincos applies to ViT backbones"):
        build_config({"model": {"arch": "resnet10t", "pos_embed": "sincos"}})
    with pytest.raises(ConfigError, match=r"model.pos_embed=sincos needs model.embed_dim"):
        build_config(
            {
                "model": {
                    "arch": "vit_custom",
                    "embed_dim": 18,
                    "num_heads": 2,
                    "pos_embed": "sincos",
                }
            }
        )
    with pytest.raises(ConfigError, match=r"model.pos_embed"):
        build_config({"model": {"arch": "vit_custom", "pos_embed": "rope"}})
