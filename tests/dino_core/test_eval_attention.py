"""Last-block CLS attention recomputed from a hook, and the 60%-mass masks (paper Sec. 4.2)."""

from __future__ import annotations

import itertools

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from dino_core.eval.attention import (
    capture_last_attention_input,
    cls_attention_maps,
    last_block_attention,
    mass_mask,
    patch_grid,
    upsample_patches,
)
from tests.tiny import timm_vit_kwargs, tiny_backbone

HEADS = 4  # more heads than TINY_VIT's 2: the per-head weights must be told apart


def manual_attention(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """The block's own non-fused path: switch fused attention off, read the softmax output."""
    attn = model.blocks[-1].attn
    got: list[torch.Tensor] = []
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: got.append(o.detach()))
    old = attn.fused_attn
    attn.fused_attn = False
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        attn.fused_attn = old
        handle.remove()
    return got[0]


def test_rows_sum_to_one_and_match_the_non_fused_block() -> None:
    model = tiny_backbone(num_heads=HEADS)
    x = torch.randn(3, 3, 16, 16)
    weights = last_block_attention(model, x)
    assert weights.shape == (3, 4, 1 + 16, 1 + 16)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 17))
    torch.testing.assert_close(weights, manual_attention(model, x), rtol=1e-5, atol=1e-6)


def test_hook_leaves_forward_numerics_unchanged_and_is_removed() -> None:
    model = tiny_backbone(num_heads=HEADS)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        cls_attention_maps(model, x)
        after = model(x)
        with capture_last_attention_input(model) as seen:
            during = model(x)
    assert torch.equal(before, after) and torch.equal(before, during)
    assert len(seen) == 1 and seen[0].shape == (2, 17, 32)
    assert not model.blocks[-1].attn._forward_pre_hooks


def test_cls_maps_drop_register_tokens_and_follow_the_image_shape() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(
        img_size=16, num_classes=0, reg_tokens=2, dynamic_img_size=True, **timm_vit_kwargs()
    ).eval()
    assert model.num_prefix_tokens == 3
    x = torch.randn(2, 3, 16, 24)
    maps = cls_attention_maps(model, x)
    assert maps.shape == (2, 2, 4, 6)
    assert patch_grid(model, 16, 24) == (4, 6)
    full = last_block_attention(model, x)
    # CLS->patch mass is the row's total minus what CLS gives to the 3 prefix tokens.
    torch.testing.assert_close(maps.flatten(-2).sum(-1), 1 - full[:, :, 0, :3].sum(-1))
    torch.testing.assert_close(full, manual_attention(model, x), rtol=1e-5, atol=1e-6)


def test_non_vit_is_refused() -> None:
    with pytest.raises(ValueError, match="VisionTransformer"):
        cls_attention_maps(torch.nn.Linear(3, 3), torch.randn(1, 3))


def test_mass_mask_hand_case() -> None:
    m = torch.tensor([[0.05, 0.5], [0.15, 0.3]])
    assert mass_mask(m, 0.6).tolist() == [[False, True], [False, True]]
    assert mass_mask(m, 0.5).tolist() == [[False, True], [False, False]]
    assert mass_mask(m, 0.81).tolist() == [[False, True], [True, True]]
    assert mass_mask(m * 7.0, 0.6).tolist() == [[False, True], [False, True]]  # unnormalised
    assert bool(mass_mask(m, 1.0).all())


def test_mass_mask_is_the_smallest_set_holding_the_threshold() -> None:
    g = torch.Generator().manual_seed(3)
    for trial in range(20):
        maps = torch.rand(2, 3, 2, 3, generator=g) ** 3  # peaked weights, 6 patches per map
        t = [0.6, 0.3, 0.9, 0.75][trial % 4]
        masks = mass_mask(maps, t)
        for m, k in zip(maps.reshape(-1, 6), masks.reshape(-1, 6), strict=True):
            p = m / m.sum()
            assert float(p[k].sum()) >= t - 1e-6
            smallest = min(
                r
                for r in range(1, 7)
                for subset in itertools.combinations(range(6), r)
                if float(p[list(subset)].sum()) >= t - 1e-6
            )
            assert int(k.sum()) == smallest


def test_upsample_covers_patches_and_zeroes_the_remainder() -> None:
    mask = torch.tensor([[True, False], [False, True]])
    up = upsample_patches(mask, (4, 4), (10, 9))
    assert up.shape == (10, 9) and up.dtype == torch.bool
    assert bool(up[:4, :4].all()) and not bool(up[:4, 4:].any())
    assert bool(up[4:8, 4:8].all()) and not bool(up[8:].any()) and not bool(up[:, 8:].any())
    vals = upsample_patches(torch.tensor([[1.0, 2.0]]), (2, 3), (2, 6))
    assert vals.tolist() == [[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]] * 2
