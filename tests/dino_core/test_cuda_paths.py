"""The GPU paths of the trainer: fp16 with GradScaler, bf16 autocast, crops made on the device,
resume. Skipped where no CUDA device exists (CI has none); run them on a GPU machine with
``pytest tests/dino_core/test_cuda_paths.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dino_core.checkpoint import load_checkpoint
from dino_core.train import train
from tests.dino_core.conftest import tiny_config
from tests.dino_core.test_train import Crash, CrashAt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# Worst per-step |loss - loss_fp32| over 50 steps, in nats. bf16 keeps 8 mantissa bits; the
# loss itself is computed in fp32 outside autocast. fp16 runs under GradScaler, which skips
# the optimiser step while it halves its initial scale (2^16) to one whose gradients are
# finite: those skipped steps shift the fp16 curve by a few steps against fp32 during the
# fast early descent (measured on an H100: 0.21 nats at worst), so fp16 is held to its first
# step (identical weights: forward numerics only) and to a bounded drift.
LOSS_TOLERANCE = {"bf16": 0.05, "fp16": 0.5}
FIRST_STEP_TOLERANCE = 0.01
RUN = {"train.epochs": 7, "train.batch_size": 8, "train.max_steps": 50,
       "train.collapse_action": "warn", "train.device": "cuda"}  # fmt: skip


def _losses(path: Path) -> list[float]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_tracks_fp32_on_cuda(tmp_path: Path, precision: str) -> None:
    r32 = train(tiny_config(**RUN), str(tmp_path / "fp32"))
    rlo = train(tiny_config(**RUN, **{"train.precision": precision}), str(tmp_path / precision))
    assert r32.status == rlo.status == "SUCCEEDED"
    assert r32.step == rlo.step == 50
    l32, llo = _losses(tmp_path / "fp32"), _losses(tmp_path / precision)
    diffs = [abs(a - b) for a, b in zip(l32, llo, strict=True)]
    assert diffs[0] < FIRST_STEP_TOLERANCE, diffs[0]
    assert max(diffs) < LOSS_TOLERANCE[precision], diffs
    assert max(diffs) > 0.0  # the low precision was really used


def test_fp16_checkpoint_holds_the_grad_scaler_state(tmp_path: Path) -> None:
    res = train(tiny_config(**RUN, **{"train.precision": "fp16"}), str(tmp_path / "run"))
    assert res.checkpoint is not None
    state = load_checkpoint(res.checkpoint)
    scaler = state["scaler"]
    # 2^16 halved once per skipped step: a scale that found its level in a few steps, and a
    # run that kept stepping afterwards
    assert scaler and 2.0**6 <= float(scaler["scale"]) <= 2.0**16, scaler
    assert res.status == "SUCCEEDED" and res.step == 50


def test_cuda_resume_continues_the_same_run(tmp_path: Path) -> None:
    """Killed after step 25 and resumed from the step-20 checkpoint: one metrics history of
    40 steps whose losses join the uninterrupted run's (CUDA kernels are not bitwise
    deterministic, so a tolerance instead of the CPU test's equality)."""
    cfg = tiny_config(**{**RUN, "train.max_steps": 40, "train.checkpoint_every_steps": 10})
    full = train(cfg, str(tmp_path / "full"))
    with pytest.raises(Crash):
        train(cfg, str(tmp_path / "cut"), [CrashAt(25)])
    rest = train(cfg, str(tmp_path / "cut"))
    assert full.step == rest.step == 40
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert len(a) == len(b) == 40
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-2


def test_batched_crops_are_made_on_the_gpu(tmp_path: Path) -> None:
    from dino_core.data import build_train_loader, load_dataset

    cfg = tiny_config(**RUN, **{"crops.pipeline": "batched"})
    loader = build_train_loader(cfg, load_dataset(cfg.data, "train"), device="cuda")
    crops = next(iter(loader.epoch(0)))
    assert len(crops) == 2 + cfg.crops.local_number
    assert all(c.is_cuda and c.dtype == torch.float32 for c in crops)
    assert crops[0].shape[-1] == cfg.crops.global_size
    assert crops[-1].shape[-1] == cfg.crops.local_size
