"""``model.conv_stem``: 3×3 convolutions before the ViT's patch projection, same patch grid."""

from __future__ import annotations

import pytest
import torch

from dino_core.config import ConfigError, ModelConfig, build_config
from dino_core.eval.attention import cls_attention_maps, patch_size_of
from dino_core.models import build_backbone
from dino_core.models.conv_stem import ConvStemPatchEmbed
from dino_core.optim import lr_multiplier


def vit(conv_stem: tuple[int, ...] = ()) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="vit_custom",
        patch_size=7,
        in_chans=1,
        embed_dim=32,
        depth=2,
        num_heads=4,
        num_registers=2,
        conv_stem=conv_stem,
    )
    model, dim = build_backbone(cfg, 28)
    assert dim == 32
    return model.eval()


@pytest.mark.parametrize("side", [28, 14])
def test_the_patch_grid_and_attention_maps_are_the_plain_vits(side: int) -> None:
    plain, stem = vit(), vit((8, 16))
    x = torch.randn(3, 1, side, side)
    tokens = stem.forward_features(x)
    assert tokens.shape == plain.forward_features(x).shape == (3, 1 + 2 + (side // 7) ** 2, 32)
    assert cls_attention_maps(stem, x).shape == (3, 4, side // 7, side // 7)
    assert patch_size_of(stem) == (7, 7)


def test_the_stem_is_conv_bn_relu_inside_the_patch_embedding() -> None:
    model = vit((8, 16))
    pe = model.patch_embed
    assert isinstance(pe, ConvStemPatchEmbed)
    kinds = [type(m).__name__ for m in pe.stem]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 2
    assert [m.out_channels for m in pe.stem if isinstance(m, torch.nn.Conv2d)] == [8, 16]
    assert pe.proj.in_channels == 16 and pe.proj.kernel_size == (7, 7)
    # the optimiser sees the stem as patch embedding (optim.patch_embed_lr_mult applies)
    names = [n for n, _ in model.named_parameters() if ".stem." in n]
    assert names and all(n.startswith("patch_embed.stem.") for n in names)
    assert lr_multiplier(f"backbone.{names[0]}", 2, 1.0, 0.2) == pytest.approx(0.2)
    # the stem has BatchNorm running statistics (the teacher keeps its own)
    assert any(".stem." in n for n, _ in model.named_buffers())


def test_a_token_sees_across_its_patch_border_only_with_the_stem() -> None:
    """A pixel in patch (0, 0) next to patch (0, 1) reaches token (0, 1) through the 3×3
    convolutions; the linear patch embedding keeps it out."""
    x = torch.rand(1, 1, 28, 28)
    poked = x.clone()
    poked[0, 0, 3, 6] += 5.0  # row 3, the last column of patch (0, 0)
    for stem, moves in (((), False), ((8,), True)):
        embed = vit(stem).patch_embed
        before, after = embed(x), embed(poked)  # [1, 4, 4, D]
        assert not torch.equal(before[0, 0, 0], after[0, 0, 0])
        assert (not torch.equal(before[0, 0, 1], after[0, 0, 1])) == moves
        torch.testing.assert_close(before[0, 0, 2], after[0, 0, 2])


def test_conv_stem_is_refused_where_it_does_not_apply() -> None:
    with pytest.raises(ConfigError, match=r"model.conv_stem applies to arch 'vit_custom'"):
        build_config({"model": {"arch": "resnet10t", "conv_stem": [32]}})
    with pytest.raises(ConfigError, match=r"model.conv_stem applies to arch 'vit_custom'"):
        build_config({"model": {"arch": "vit_small_patch16_224", "conv_stem": [32]}})
    with pytest.raises(ConfigError, match=r"model.conv_stem=\[32, 0\]: every layer needs 1-1024"):
        build_config({"model": {"arch": "vit_custom", "conv_stem": [32, 0]}})
    with pytest.raises(ConfigError, match=r"model.conv_stem"):
        build_config({"model": {"arch": "vit_custom", "conv_stem": [8] * 9}})
    cfg = build_config({"model": {"arch": "vit_custom", "conv_stem": [32, 64]}})
    assert cfg.model.conv_stem == (32, 64)
    assert build_config(cfg.to_dict()).model.conv_stem == (32, 64)  # saved and read back
