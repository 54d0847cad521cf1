"""DINOv2's ViT options: register tokens (and attention maps without them), LayerScale,
uniform drop path; all off by default."""

from __future__ import annotations

import re

import pytest
import torch
from timm.layers import DropPath
from timm.models.vision_transformer import LayerScale

from dino_core.config import ConfigError, ModelConfig, build_config
from dino_core.eval.attention import cls_attention_maps, last_block_attention
from dino_core.eval.mask_score import image_mask_stats
from dino_core.models import build_backbone


def vit(**options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="vit_custom", patch_size=4, embed_dim=32, depth=3, num_heads=4, **options
    )
    model, _ = build_backbone(cfg, 16)
    return model.eval()


def test_registers_change_the_token_count_not_the_attention_maps() -> None:
    plain, reg = vit(), vit(num_registers=4)
    assert reg.num_prefix_tokens == 1 + 4 and reg.reg_token.shape == (1, 4, 32)
    x = torch.randn(2, 3, 16, 16)
    assert reg.forward_features(x).shape == (2, 1 + 4 + 16, 32)
    assert plain.forward_features(x).shape == (2, 1 + 16, 32)
    weights = last_block_attention(reg, x)
    assert weights.shape == (2, 4, 21, 21)
    maps = cls_attention_maps(reg, x)
    assert maps.shape == cls_attention_maps(plain, x).shape == (2, 4, 4, 4)
    # the maps are the CLS -> patch weights: the register columns are left out
    torch.testing.assert_close(maps.flatten(-2), weights[:, :, 0, 5:])
    assert (maps.flatten(-2).sum(-1) < 1.0 - weights[:, :, 0, 1:5].sum(-1) + 1e-5).all()
    # and the mask score runs on patch maps of the same shape
    st = image_mask_stats(maps, torch.ones(2, 16, 16, dtype=torch.bool), (4, 4))
    head_iou, mean_iou = st.head_iou, st.mean_iou
    assert head_iou.shape == (2, 4) and mean_iou.shape == (2,)


def test_layerscale_and_uniform_drop_path() -> None:
    model = vit(layerscale=1e-5, drop_path_uniform=True, drop_path_rate=0.2)
    for block in model.blocks:
        assert isinstance(block.ls1, LayerScale) and torch.all(block.ls1.gamma == 1e-5)
        assert isinstance(block.drop_path1, DropPath) and block.drop_path1.drop_prob == 0.2
        assert isinstance(block.drop_path2, DropPath) and block.drop_path2.drop_prob == 0.2
    linear = vit(drop_path_rate=0.2)  # timm's rule: 0 at the first block, 0.2 at the last
    assert not isinstance(linear.blocks[0].drop_path1, DropPath)
    assert linear.blocks[2].drop_path1.drop_prob == pytest.approx(0.2)
    assert linear.blocks[1].drop_path1.drop_prob == pytest.approx(0.1)


def test_defaults_build_the_dino_v1_model() -> None:
    a, b = vit(), vit(num_registers=0, layerscale=None, drop_path_uniform=False)
    assert a.state_dict().keys() == b.state_dict().keys()
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert not any("ls1" in k or "reg_token" in k for k in a.state_dict())


@pytest.mark.parametrize(
    "option", [{"num_registers": 4}, {"layerscale": 1e-5}, {"drop_path_uniform": True}]
)
def test_vit_options_on_a_convnet_are_config_errors(option: dict[str, object]) -> None:
    (name,) = option
    with pytest.raises(ConfigError, match=re.escape(f"model.{name} applies to ViT backbones only")):
        build_config({"model": {"arch": "resnet18", **option}})
