"""The fast step keeps DINO's numerics: bf16 tracks fp32, and the benchmark's reference step
(official loops) computes what the fast step computes (the attention kernels:
test_attention.py)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from benchmarks.step_throughput import official_clip, official_ema
from dino_core import runtime
from dino_core.config import TrainConfig
from dino_core.models import build_model
from dino_core.optim import clip_per_parameter
from dino_core.teacher import ema_update
from dino_core.train import train
from tests.dino_core.conftest import tiny_config

# Worst per-step |loss_bf16 - loss_fp32| over 50 steps of the tiny run, in nats. bf16 keeps
# 8 mantissa bits (relative error 2^-9 per rounding); the loss itself is computed in fp32.
BF16_LOSS_TOLERANCE = 0.05


def _losses(path: Path) -> list[float]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows]


# (the ConvNet path's bf16 numerics: test_models_convnet.py, one forward and backward)
def test_bf16_loss_tracks_fp32_over_50_steps(tmp_path: Path) -> None:
    over = {"train.epochs": 7, "train.batch_size": 8, "train.max_steps": 50,
            "train.collapse_action": "warn"}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bf16 is emulated on CPUs without AMX
        r32 = train(tiny_config(**over), str(tmp_path / "fp32"))
        r16 = train(tiny_config(**over, **{"train.precision": "bf16"}), str(tmp_path / "bf16"))
    assert r32.step == r16.step == 50
    l32, l16 = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    assert len(l32) == len(l16) == 50
    diffs = [abs(a - b) for a, b in zip(l32, l16, strict=True)]
    assert max(diffs) < BF16_LOSS_TOLERANCE, diffs
    # and the two runs are not trivially identical (bf16 was really used)
    assert max(diffs) > 0.0


def test_bf16_is_fast_follows_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    for flags, expected in [
        (frozenset({"avx2", "avx512f", "avx512_vnni"}), False),
        (frozenset({"avx512f", "avx512_bf16"}), True),
        (frozenset({"amx_tile", "amx_bf16"}), True),
    ]:
        monkeypatch.setattr(runtime, "cpu_flags", lambda f=flags: f)
        assert runtime.bf16_is_fast(cpu) is expected


def test_bf16_on_slow_cpu_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.warns(UserWarning, match="precision='fp32'"):
        runtime.detect_runtime(TrainConfig(precision="bf16", device="cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runtime.detect_runtime(TrainConfig(precision="fp32", device="cpu"))


def test_reference_and_foreach_clip_and_ema_agree() -> None:
    torch.manual_seed(1)
    a, b = build_model(tiny_config()), build_model(tiny_config())
    b.load_state_dict(a.state_dict())
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        g = torch.randn_like(pa) * 5.0  # large enough that some norms exceed the clip
        pa.grad, pb.grad = g.clone(), g.clone()
    norms = clip_per_parameter(a, 3.0)
    official_clip(b, 3.0)
    assert (norms > 3.0).any()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert pa.grad is not None and pb.grad is not None
        torch.testing.assert_close(pa.grad, pb.grad)
        assert float(pa.grad.norm()) <= 3.0 + 1e-4
    ta, tb = build_model(tiny_config()), build_model(tiny_config())
    tb.load_state_dict(ta.state_dict())
    ema_update(ta, a, 0.9)
    official_ema(tb, b, 0.9)
    for pa, pb in zip(ta.parameters(), tb.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
