"""Every ``train.attention`` kernel computes the same attention; ``auto`` measures each shape
once without touching the RNG, and a checkpoint keeps its choices for the resumed run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import timm
import torch

from dino_core.checkpoint import load_checkpoint
from dino_core.config import ConfigError, ModelConfig, build_config
from dino_core.models import attention, build_backbone, build_model
from dino_core.models.attention import KERNELS, PlannedAttention, candidates, use_attention
from dino_core.runtime import autocast
from dino_core.train import train
from tests.dino_core.conftest import tiny_config

CHOICES = ("sdpa", "math", "sdpa_fp32", "math_fp32", "auto")
# Relative error ||x - ref|| / ||ref|| of the head outputs and of every parameter gradient
# against the explicit kernel in fp32 without autocast (``math_fp32``), same weights and crops.
# fp32: the kernels differ in summation order only; measured on an AMD EPYC (Zen 4): <= 1.0e-6.
FP32_TOLERANCE = 1e-5
# bf16 autocast (every matmul, not only attention, in bf16: 8 mantissa bits, 2^-9 relative per
# rounding, a few dozen roundings deep through 2 blocks and the head); measured <= 1.9e-2.
BF16_TOLERANCE = 5e-2


@pytest.fixture
def fresh_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's auto choices start empty (the process keeps them otherwise)."""
    monkeypatch.setattr(attention, "_PLAN", {})
    monkeypatch.setattr(attention, "_TIMINGS", {})


def _crops(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 16, 16, generator=g) for _ in range(2)] + [
        torch.randn(4, 3, 8, 8, generator=g) for _ in range(2)
    ]


def _run(choice: str, precision: str, state: dict[str, Any]) -> tuple[torch.Tensor, list[Any]]:
    model = build_model(tiny_config(**{"train.attention": choice}))
    model.load_state_dict(state)
    with autocast(precision, torch.device("cpu")):
        out = model(_crops())
    out.float().square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    return out.detach().float(), grads


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.float() - ref.float()).norm() / ref.float().norm())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_kernel_gives_the_same_outputs_and_gradients(
    precision: str, fresh_plan: None
) -> None:
    torch.manual_seed(0)
    state = build_model(tiny_config()).state_dict()
    ref_out, ref_grads = _run("math_fp32", "fp32", state)
    tol = FP32_TOLERANCE if precision == "fp32" else BF16_TOLERANCE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bf16 may be emulated on this CPU
        for choice in CHOICES:
            out, grads = _run(choice, precision, state)
            assert _rel(out, ref_out) < tol, (choice, _rel(out, ref_out))
            assert len(grads) == len(ref_grads)
            for g, ref in zip(grads, ref_grads, strict=True):
                assert g is not None and ref is not None
                assert _rel(g, ref) < tol, (choice, _rel(g, ref))


def test_explicit_kernels_differ_only_in_rounding_in_bf16() -> None:
    """The bf16 comparison above is not vacuous: bf16 kernels do round differently."""
    torch.manual_seed(0)
    state = build_model(tiny_config()).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, _ = _run("math", "bf16", state)
        b, _ = _run("math_fp32", "bf16", state)
    assert 0.0 < _rel(a, b) < BF16_TOLERANCE


def test_auto_measures_each_shape_once_and_leaves_the_rng_alone(fresh_plan: None) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config())
    crops = _crops()
    rng = torch.get_rng_state()
    with torch.no_grad():
        model(crops[:2])  # a teacher pass: the global shape, forward only
    model(crops).sum().backward()  # a student pass: both shapes, forward and backward
    assert torch.equal(torch.get_rng_state(), rng)
    plan, timings = attention.plan_state(), attention.measured_timings()
    kinds = sorted(key.split("|")[-1] for key in plan)
    assert kinds == ["fwd", "fwd+bwd", "fwd+bwd"]
    # batch 8 x 2 heads x (16 + 1 tokens | 4 + 1 tokens) x head_dim 16
    shapes = sorted(key.split("|")[2] for key in plan)
    assert shapes == ["8x2x17x16", "8x2x17x16", "8x2x5x16"]
    for key, kernel in plan.items():
        assert set(timings[key]) == set(candidates(torch.float32))
        assert kernel in KERNELS and all(t > 0 for t in timings[key].values())
    model(crops).sum().backward()  # known shapes: nothing measured again
    assert attention.measured_timings() == timings


def test_choose_keeps_sdpa_unless_another_is_clearly_faster() -> None:
    assert attention.choose({"sdpa": 1.0, "math": 0.97}) == "sdpa"  # within the 5 % margin
    assert attention.choose({"sdpa": 1.0, "math": 0.5, "math_fp32": 0.6}) == "math"
    assert attention.choose({"sdpa": 1.0, "math": 2.0}) == "sdpa"


def test_resumed_run_keeps_the_checkpointed_choices(tmp_path: Path, fresh_plan: None) -> None:
    cfg = tiny_config(**{"train.checkpoint_every_steps": 2, "train.max_steps": 2})
    first = train(cfg, str(tmp_path))
    assert first.checkpoint is not None
    saved = load_checkpoint(first.checkpoint)["attention_plan"]
    assert len(saved) == 3 and set(saved.values()) <= set(KERNELS)
    # a new process: nothing measured yet; the resumed run adopts the checkpoint's kernels
    attention._PLAN.clear()
    attention._TIMINGS.clear()
    more = tiny_config(**{"train.checkpoint_every_steps": 2, "train.max_steps": 4})
    assert train(more, str(tmp_path)).step == 4
    assert attention.plan_state() == saved
    assert attention.measured_timings() == {}


def test_swapped_attention_keeps_the_state_dict_of_timm() -> None:
    timm_vit, _ = build_backbone(ModelConfig(**tiny_config().model.model_dump()), 16)
    keys = list(timm_vit.state_dict())
    assert use_attention(timm_vit, "math") == 2  # both blocks
    assert all(isinstance(b.attn, PlannedAttention) for b in timm_vit.blocks)
    assert list(timm_vit.state_dict()) == keys
    assert use_attention(timm_vit, "sdpa") == 2 and timm_vit.blocks[0].attn.choice == "sdpa"
    resnet = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    assert use_attention(resnet, "math") == 0


def test_unknown_attention_choice_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"train\.attention"):
        build_config({"train": {"attention": "flash"}})
