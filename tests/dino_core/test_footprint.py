"""The memory estimate of one training rank (``dino_core.footprint``): exact parameter
counts from the meta-device build, activations never above what autograd really keeps."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dino_core.config import ConfigError, DinoConfig
from dino_core.footprint import footprint
from dino_core.models import build_model
from tests.tiny import tiny_dict


def _tiny(**train: Any) -> DinoConfig:
    return DinoConfig.model_validate(
        tiny_dict(warmup_epochs=0, synthetic_size=32, train={"epochs": 1, **train})
    )


def _saved_activation_bytes(cfg: DinoConfig) -> int:
    """Bytes of the tensors autograd saves in one real student forward (params excluded)."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    b, g, s = cfg.train.batch_size, cfg.crops.global_size, cfg.crops.local_size
    crops = [torch.randn(b, 3, g, g) for _ in range(2)]
    crops += [torch.randn(b, 3, s, s) for _ in range(cfg.crops.local_number)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(crops)
    return sum(n for ptr, n in saved.items() if ptr not in params)


def test_parameters_state_and_scaling() -> None:
    cfg = _tiny(batch_size=16)
    fp = footprint(cfg)
    assert fp.parameters == sum(p.numel() for p in build_model(cfg).parameters())
    assert fp.state_bytes == fp.parameters * 4 * 5  # weights, grads, 2 AdamW moments, teacher
    assert fp.data_bytes == 32 * 3 * 32 * 32  # the synthetic images, uint8
    assert footprint(_tiny(batch_size=32)).activation_bytes == 2 * fp.activation_bytes
    assert footprint(cfg, world_size=2).activation_bytes == fp.activation_bytes // 2
    assert footprint(_tiny(batch_size=16, precision="bf16")).activation_bytes * 2 == (
        fp.activation_bytes
    )


@pytest.mark.parametrize(
    "model",
    [
        {},  # the tiny ViT
        {"arch": "resnet10t", "patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6},
    ],
)
def test_activations_are_a_lower_bound_of_what_autograd_keeps(model: dict[str, Any]) -> None:
    data = tiny_dict(warmup_epochs=0, synthetic_size=32, train={"epochs": 1, "batch_size": 4})
    data["model"].update(model)
    data["crops"].update(global_size=32, local_size=16)
    cfg = DinoConfig.model_validate(data)
    estimate, real = footprint(cfg).activation_bytes, _saved_activation_bytes(cfg)
    assert 0.5 * real <= estimate <= real


def test_an_unknown_architecture_names_the_field() -> None:
    data = tiny_dict(warmup_epochs=0, synthetic_size=32, train={"epochs": 1})
    data["model"]["arch"] = "not_a_timm_model"
    with pytest.raises(ConfigError, match=r"model\.arch='not_a_timm_model' is not a timm model"):
        footprint(DinoConfig.model_validate(data))


def test_the_auto_attention_choice_is_not_timed_on_the_meta_device() -> None:
    """``train.attention: auto`` times kernels on real tensors; the meta-device build of the
    submit-time estimate has none to time and must still count the ViT (it raised)."""
    cfg = _tiny(attention="auto")
    assert footprint(cfg).device_bytes > 0
