"""Frozen-feature extraction and the baselines' models."""

from __future__ import annotations

import pytest
import torch

from dino_core.config import DinoConfig, build_config
from dino_core.eval.baselines import RawPixels, baseline_models, random_init_backbone
from dino_core.eval.features import default_last_blocks, extract_features, probe_features
from dino_core.models import build_model
from tests.tiny import tiny_backbone, tiny_vit

# 3 blocks: fewer than the paper's 4 probed blocks, more than the 2 a test concatenates
DEPTH = 3


def tiny_cfg(seed: int = 5) -> DinoConfig:
    return build_config(
        {
            "model": tiny_vit(depth=DEPTH),
            "head": {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16},
            "crops": {"global_size": 16, "local_size": 8},
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
            "train": {"epochs": 1, "seed": seed},
        }
    )


def batches(n: int, bs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 16, 16, generator=g)
    y = torch.arange(n) % 3
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)]


def test_cls_features_are_normalised_batched_and_labelled() -> None:
    model = tiny_backbone(depth=DEPTH)
    data = batches(7, 3)
    feats, labels = extract_features(model, data)
    assert feats.shape == (7, 32) and labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(7))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model(torch.cat([x for x, _ in data])), dim=1)
    torch.testing.assert_close(feats, ref, rtol=1e-5, atol=1e-6)
    raw, _ = extract_features(model, data, normalize=False)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(7))


def test_last_blocks_concatenate_normed_cls_and_pool_patches() -> None:
    model = tiny_backbone(depth=DEPTH)
    x = batches(4, 4)[0][0]
    with torch.no_grad():
        cls = model(x)
        two = probe_features(model, x, n_last_blocks=2)
        pooled = probe_features(model, x, n_last_blocks=1, avgpool_patchtokens=True)
        tokens = model.forward_features(x)
    assert two.shape == (4, 64) and pooled.shape == (4, 64)
    torch.testing.assert_close(two[:, 32:], cls)  # the last block's CLS, after the final norm
    torch.testing.assert_close(pooled[:, :32], cls)
    torch.testing.assert_close(pooled[:, 32:], tokens[:, 1:].mean(dim=1))
    assert default_last_blocks(model) == 3  # min(4 (paper, ViT-S), depth)
    with pytest.raises(ValueError, match="exceeds the model depth"):
        probe_features(model, x, n_last_blocks=4)


def test_mode_is_restored_and_non_vits_refuse_block_features() -> None:
    model = tiny_backbone(depth=DEPTH).train()
    extract_features(model, batches(2, 2))
    assert model.training
    raw = RawPixels(max_side=8)
    assert raw(torch.randn(2, 3, 16, 16)).shape == (2, 3 * 8 * 8)
    assert raw(torch.randn(2, 1, 6, 6)).shape == (2, 36)
    with pytest.raises(ValueError, match="VisionTransformer"):
        probe_features(raw, torch.randn(1, 3, 8, 8), n_last_blocks=2)


def test_random_init_is_the_runs_starting_backbone_and_keeps_global_rng() -> None:
    cfg = tiny_cfg(seed=5)
    torch.manual_seed(99)
    state = torch.get_rng_state()
    base = random_init_backbone(cfg)
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(cfg.train.seed)  # what the trainer does before building the student
    student = build_model(cfg).backbone
    for (k, a), (_, b) in zip(base.state_dict().items(), student.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert set(baseline_models(cfg)) == {"random_init", "raw_pixels"}
    assert set(baseline_models(cfg, include_raw_pixels=False)) == {"random_init"}
