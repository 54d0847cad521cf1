"""DINOv2's optimiser options: layer-wise lr decay, the patch-embedding lr multiplier and the
square-root lr scaling rule; the DINO v1 groups stay as they were."""

from __future__ import annotations

import math
import re

import pytest
import torch

from dino_core.config import ConfigError, build_config
from dino_core.models import build_model
from dino_core.optim import build_optimizer, param_groups, set_schedule
from dino_core.schedules import peak_lr
from tests.dino_core.conftest import tiny_config


def _lr_by_name(cfg_over: dict[str, object]) -> dict[str, float]:
    cfg = tiny_config(**cfg_over)
    model = build_model(cfg)
    opt = build_optimizer(cfg.optim, model, torch.device("cpu"))
    set_schedule(opt, lr=1.0, wd=0.5)
    by_param = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    return {n: by_param[id(p)] for n, p in model.named_parameters() if p.requires_grad}


def test_layerwise_decay_gives_the_documented_per_block_lr() -> None:
    # 2 blocks, rate 0.9: block i at 0.9^(2 - i), embeddings 0.9^3, patch embedding also x 0.2
    lr = _lr_by_name(
        {"optim.layerwise_decay": 0.9, "optim.patch_embed_lr_mult": 0.2, "loss.ibot_weight": 1}
    )
    assert lr["backbone.blocks.0.attn.qkv.weight"] == pytest.approx(0.9**2)
    assert lr["backbone.blocks.0.norm1.bias"] == pytest.approx(0.9**2)
    assert lr["backbone.blocks.1.mlp.fc2.weight"] == pytest.approx(0.9)
    for name in ("backbone.cls_token", "backbone.pos_embed", "mask_token"):
        assert lr[name] == pytest.approx(0.9**3), name
    assert lr["backbone.patch_embed.proj.weight"] == pytest.approx(0.9**3 * 0.2)
    assert lr["backbone.patch_embed.proj.bias"] == pytest.approx(0.9**3 * 0.2)
    assert lr["backbone.norm.weight"] == 1.0
    assert all(v == 1.0 for k, v in lr.items() if k.startswith("head."))


def test_layerwise_groups_keep_the_weight_decay_rule() -> None:
    cfg = tiny_config(**{"optim.layerwise_decay": 0.9, "model.num_registers": 2})
    model = build_model(cfg)
    opt = build_optimizer(cfg.optim, model, torch.device("cpu"))
    set_schedule(opt, lr=1.0, wd=0.5)
    wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert wd[id(named["backbone.blocks.1.attn.qkv.weight"])] == 0.5
    assert wd[id(named["backbone.blocks.1.attn.qkv.bias"])] == 0.0
    assert wd[id(named["backbone.norm.weight"])] == 0.0
    assert wd[id(named["backbone.reg_token"])] == 0.5  # like the CLS token (ndim 3)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(
        [p for p in model.parameters() if p.requires_grad]
    )


def test_dino_v1_keeps_two_groups_and_one_lr() -> None:
    cfg = tiny_config()
    model = build_model(cfg)
    opt = build_optimizer(cfg.optim, model, torch.device("cpu"))
    assert len(opt.param_groups) == 2 == len(param_groups(model))
    assert not any("lr_mult" in g or "wd_mult" in g for g in opt.param_groups)
    set_schedule(opt, lr=0.25, wd=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]


def test_sqrt_scaling_rule_wrt_batch_1024() -> None:
    linear = build_config(None, {"optim.lr": 0.0005, "train.batch_size": 512})
    assert peak_lr(linear) == pytest.approx(0.0005 * 2)
    sqrt_over = {"optim.lr": 0.004, "train.batch_size": 256, "optim.lr_scaling": "sqrt"}
    sqrt = build_config(None, sqrt_over)
    assert peak_lr(sqrt) == pytest.approx(0.004 * math.sqrt(0.25))
    # at batch 64 both rules scale by 1/4
    at64 = {"train.batch_size": 64, "optim.lr": 0.004}
    assert peak_lr(build_config(None, at64)) == pytest.approx(
        peak_lr(build_config(None, {**at64, "optim.lr_scaling": "sqrt"}))
    )


@pytest.mark.parametrize("option", ["optim.layerwise_decay", "optim.patch_embed_lr_mult"])
def test_lr_multipliers_on_a_convnet_are_config_errors(option: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{option} needs a ViT backbone")):
        build_config({"model": {"arch": "resnet18"}}, {option: 0.5})
