"""The trainer: exact resume, last-layer freeze, checkpoints, divergence, callbacks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from dino_core.callbacks import Callback, CheckpointEvent, StepEvent
from dino_core.checkpoint import checkpoint_step, list_checkpoints, load_checkpoint, load_latest
from dino_core.metrics_file import read_metrics
from dino_core.models import build_model
from dino_core.runtime import seed_everything
from dino_core.train import train
from tests.dino_core.conftest import tiny_config


class Crash(Exception):
    pass


class CrashAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, event: StepEvent) -> None:
        if event.step == self.step:
            raise Crash(f"killed after step {event.step}")


# Each DINOv2 component on its own (paper: Oquab et al. 2023, arXiv 2304.07193), then the ViT
# and optimiser options together; all must resume bit for bit like DINO v1.
DINOV2_OPTIONS: dict[str, dict[str, Any]] = {
    "sinkhorn_knopp": {"loss.centering": "sinkhorn_knopp"},
    "koleo": {"loss.koleo_weight": 0.1},
    "ibot": {"loss.ibot_weight": 1.0},
    "ibot_separate_head_sk": {
        "loss.ibot_weight": 1.0,
        "ibot.separate_head": True,
        "loss.centering": "sinkhorn_knopp",
    },
    "registers": {"model.num_registers": 2},
    "optimiser_and_vit": {
        "optim.layerwise_decay": 0.9,
        "optim.patch_embed_lr_mult": 0.2,
        "optim.lr_scaling": "sqrt",
        "model.layerscale": 1e-5,
        "model.drop_path_uniform": True,
    },
}
RESUME_CASES = [
    pytest.param("per_image", {}, id="per_image"),
    pytest.param("batched", {}, id="batched"),
    *(pytest.param("batched", o, id=name) for name, o in DINOV2_OPTIONS.items()),
]


@pytest.mark.parametrize(("pipeline", "options"), RESUME_CASES)
def test_resume_is_bitwise_exact(tmp_path: Path, pipeline: str, options: dict[str, Any]) -> None:
    cfg = tiny_config(
        **{
            "train.checkpoint_every_steps": 3,
            "crops.pipeline": pipeline,
            "model.drop_path_rate": 0.1,
            **options,
        }
    )
    full = train(cfg, str(tmp_path / "full"))
    assert full.status == "SUCCEEDED" and full.step == 8  # 64 images / 16 = 4 steps x 2 epochs
    with pytest.raises(Crash):
        train(cfg, str(tmp_path / "cut"), [CrashAt(5)])  # last checkpoint: step 3
    assert [Path(p).name for p in list_checkpoints(str(tmp_path / "cut"))] == [
        "checkpoint-00000003.pt",
        "checkpoint-00000004.pt",
    ]
    resumed = train(cfg, str(tmp_path / "cut"))
    assert resumed.step == 8
    ck_full = load_checkpoint(full.checkpoint)  # type: ignore[arg-type]
    ck_cut = load_checkpoint(resumed.checkpoint)  # type: ignore[arg-type]
    for part in ("teacher", "student", "loss", "ibot_loss"):
        a, b = ck_full.get(part, {}), ck_cut.get(part, {})
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (part, k)
    # the metrics file holds each step exactly once and the same values
    m_full, m_cut = read_metrics(str(tmp_path / "full")), read_metrics(str(tmp_path / "cut"))
    assert [r["step"] for r in m_cut] == list(range(1, 9))
    for key in ("loss", "teacher_entropy", "loss_dino", "loss_koleo", "loss_ibot"):
        assert [r.get(key) for r in m_cut] == [r.get(key) for r in m_full], key


def test_last_layer_frozen_in_epoch_0_only(tmp_path: Path) -> None:
    cfg = tiny_config(**{"optim.freeze_last_layer": 1, "train.keep_checkpoints": 5})
    seed_everything(cfg.train.seed)
    init = build_model(cfg).state_dict()
    train(cfg, str(tmp_path))
    ckpts = list_checkpoints(str(tmp_path))
    after_e0 = load_checkpoint(ckpts[0])["student"]
    after_e1 = load_checkpoint(ckpts[1])["student"]
    key = "head.last_layer.parametrizations.weight.original1"
    assert torch.equal(after_e0[key], init[key])
    assert not torch.equal(after_e1[key], after_e0[key])
    assert not torch.equal(after_e0["head.mlp.0.weight"], init["head.mlp.0.weight"])
    # the file name carries the step the payload holds (benchmarks read it without loading)
    assert [checkpoint_step(p) for p in ckpts] == [load_checkpoint(p)["step"] for p in ckpts]
    with pytest.raises(ValueError, match="not a checkpoint name"):
        checkpoint_step(str(tmp_path / "model.pt"))


def test_teacher_never_gets_gradients_and_follows_ema(tmp_path: Path) -> None:
    cfg = tiny_config(
        **{
            "teacher.momentum": 1.0,
            "train.epochs": 1,
            "loss.warmup_teacher_temp_epochs": 0,
            "optim.warmup_epochs": 0,
        }
    )
    seed_everything(cfg.train.seed)
    init = build_model(cfg).state_dict()
    res = train(cfg, str(tmp_path))
    ck = load_checkpoint(res.checkpoint)  # type: ignore[arg-type]
    for k, v in ck["teacher"].items():  # momentum 1: the teacher never moves
        assert torch.equal(v, init[k]), k
    assert not torch.equal(ck["student"]["head.mlp.0.weight"], init["head.mlp.0.weight"])


def test_metrics_reported_every_step(tmp_path: Path) -> None:
    seen: list[StepEvent] = []
    ckpts: list[CheckpointEvent] = []

    class Rec(Callback):
        def on_step_end(self, event: StepEvent) -> None:
            seen.append(event)

        def on_checkpoint(self, event: CheckpointEvent) -> None:
            ckpts.append(event)

    cfg = tiny_config()
    train(cfg, str(tmp_path), [Rec()])
    assert [e.step for e in seen] == list(range(1, 9))
    keys = {
        "loss",
        "lr",
        "wd",
        "momentum",
        "teacher_temp",
        "teacher_entropy",
        "teacher_batch_entropy",
        "student_entropy",
        "kl",
        "center_norm",
        "loss_minus_lnK",
        "images_per_s",
    }
    assert keys <= set(seen[0].metrics)
    m = seen[-1].metrics
    assert m["loss_minus_lnK"] == pytest.approx(m["loss"] - math.log(64))
    assert m["kl"] == pytest.approx(m["loss"] - m["teacher_entropy"])
    assert 0 <= m["teacher_entropy"] <= m["teacher_batch_entropy"] <= math.log(64) + 1e-4
    assert [c.step for c in ckpts] == [4, 8]
    assert (tmp_path / "config.yaml").exists()


def test_nonfinite_loss_stops_with_step_and_keeps_checkpoint(tmp_path: Path) -> None:
    cfg = tiny_config(**{"train.checkpoint_every_steps": 1, "optim.lr": 1e30})
    res = train(cfg, str(tmp_path))
    assert res.status == "DIVERGED"
    bad_step = res.detail["step"]
    assert res.error is not None and f"step {bad_step}" in res.error
    found = load_latest(str(tmp_path))
    assert found is not None and found[1]["step"] == bad_step - 1  # the last good step
    assert all(torch.isfinite(v).all() for v in found[1]["student"].values())


def test_corrupt_latest_checkpoint_falls_back(tmp_path: Path) -> None:
    cfg = tiny_config()
    train(cfg, str(tmp_path))
    ckpts = list_checkpoints(str(tmp_path))
    Path(ckpts[-1]).write_bytes(Path(ckpts[-1]).read_bytes()[:100])
    found = load_latest(str(tmp_path))
    assert found is not None and found[0] == ckpts[-2]
    with pytest.raises(Exception, match="corrupt or truncated"):
        load_checkpoint(ckpts[-1])
    res = train(cfg, str(tmp_path))  # resumes from step 4, finishes again at 8
    assert res.step == 8


class CheckpointOrder(Callback):
    """Records, at each ``before_checkpoint``, which checkpoint files already exist."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.calls: list[tuple[int, list[str]]] = []
        self.written: list[int] = []

    def before_checkpoint(self, step: int) -> None:
        self.calls.append((step, [Path(p).name for p in list_checkpoints(str(self.out))]))

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        self.written.append(event.step)


def test_before_checkpoint_runs_before_each_checkpoint_is_written(tmp_path: Path) -> None:
    """The worker flushes MLflow there: a kill right after a checkpoint must not lose the
    metrics of steps the resumed run will not redo."""
    cb = CheckpointOrder(tmp_path)
    train(tiny_config(**{"train.checkpoint_every_steps": 3}), str(tmp_path), [cb])
    assert [s for s, _ in cb.calls] == cb.written == [3, 4, 6, 8]
    for step, existing in cb.calls:
        assert f"checkpoint-{step:08d}.pt" not in existing


def test_each_active_loss_term_is_its_own_metric(tmp_path: Path) -> None:
    train(tiny_config(**{"train.max_steps": 2}), str(tmp_path / "v1"))
    row = read_metrics(str(tmp_path / "v1"))[-1]
    assert not {"loss_dino", "loss_koleo", "loss_ibot"} & set(row)  # DINO v1: just "loss"
    weights = {"loss.koleo_weight": 0.1, "loss.ibot_weight": 0.5}
    train(tiny_config(**{"train.max_steps": 2, **weights}), str(tmp_path / "v2"))
    row = read_metrics(str(tmp_path / "v2"))[-1]
    # loss = DINO + 0.1 x KoLeo summed over the 2 global crops + 0.5 x iBOT
    want = row["loss_dino"] + 0.1 * 2 * row["loss_koleo"] + 0.5 * row["loss_ibot"]
    assert row["loss"] == pytest.approx(want, rel=1e-5)
    assert row["loss_ibot"] > 0 and row["loss_koleo"] != 0
    assert row["kl"] == pytest.approx(row["loss_dino"] - row["teacher_entropy"], rel=1e-5)
    assert row["loss_minus_lnK"] == pytest.approx(row["loss_dino"] - math.log(64), rel=1e-5)


def test_fixed_epoch_size_sets_the_schedule_and_resumes_exactly(tmp_path: Path) -> None:
    """train.epoch_images 96 at batch 16 over 4 batches per pass: 2 epochs are 12 steps
    whatever the data size, the lr warm-up spans the first epoch, and a run killed mid-epoch
    resumes bit for bit."""
    cfg = tiny_config(
        **{
            "train.epoch_images": 96,
            "train.checkpoint_every_steps": 4,
            "optim.warmup_epochs": 1,
            "crops.pipeline": "batched",
        }
    )
    full = train(cfg, str(tmp_path / "full"))
    assert full.status == "SUCCEEDED" and (full.step, full.epoch) == (12, 2)
    rows = read_metrics(str(tmp_path / "full"))
    assert [r["epoch"] for r in rows] == [0.0] * 6 + [1.0] * 6
    lrs = [r["lr"] for r in rows]
    assert lrs[:6] == sorted(lrs[:6]) and lrs[0] < lrs[5]  # warm-up over 6 steps, not 4
    assert max(lrs) == lrs[6]
    with pytest.raises(Crash):
        train(cfg, str(tmp_path / "cut"), [CrashAt(10)])  # last checkpoint: step 8 (epoch 1)
    resumed = train(cfg, str(tmp_path / "cut"))
    assert resumed.step == 12
    a = load_checkpoint(full.checkpoint)["teacher"]  # type: ignore[arg-type]
    b = load_checkpoint(resumed.checkpoint)["teacher"]  # type: ignore[arg-type]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_metrics(str(tmp_path / "cut"))] == [r["loss"] for r in rows]
