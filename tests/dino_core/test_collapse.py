"""The collapse detector (paper Sec. 5.3, Fig. 7): hand-made signal windows, the batch
statistics on known outputs, and tiny real training runs -- centering off collapses to
one-hot, sharpening off to uniform, both on is not flagged."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from dino_core.config import build_config
from dino_core.monitor import CollapseDetector, step_statistics
from dino_core.train import train
from tests.tiny import tiny_dict

K = 64
LN_K = math.log(K)


def _feed(det: CollapseDetector, signals: tuple[float, float, float], steps: int) -> Any:
    found = None
    for step in range(steps):
        found = det.update(step, *signals) or found
    return found


def test_batch_entropy_separates_one_prototype_from_many() -> None:
    big = 30.0  # logits this far apart make every teacher row one-hot
    same = torch.full((4, K), -big)
    same[:, 7] = big
    spread = torch.full((4, K), -big)
    spread[torch.arange(4), torch.tensor([1, 2, 3, 4])] = big
    zero = torch.zeros(1, K)
    for teacher, want in ((same, 0.0), (spread, math.log(4))):
        stats = step_statistics(teacher, teacher, zero, 0.1, 0.04)
        assert float(stats["teacher_entropy"]) == pytest.approx(0.0, abs=1e-6)
        assert float(stats["teacher_batch_entropy"]) == pytest.approx(want, abs=1e-6)


def test_a_sharp_but_diverse_teacher_is_not_a_collapse() -> None:
    det = CollapseDetector(K, warmup_steps=0, patience=10, batch_outputs=32)
    # per sample 2% of ln K (the old one-hot threshold), but the batch uses every prototype
    assert _feed(det, (0.02 * LN_K, math.log(32), 1.0), 30) is None


def test_the_issues_run_is_one_hot() -> None:
    """Centering off: teacher entropy 0.224 nats (4% of ln K) and the whole batch on one
    prototype -- SUCCEEDED, ``collapsed: no`` before; flagged now."""
    det = CollapseDetector(256, warmup_steps=0, patience=10, batch_outputs=128)
    found = _feed(det, (0.224, 0.3, 0.05), 10)
    assert found is not None and found[0] == "one_hot"
    assert found[1]["teacher_batch_entropy"] == pytest.approx(0.3)
    assert found[1]["ln_batch"] == pytest.approx(math.log(128))


@pytest.mark.parametrize(
    ("signals", "kind"),
    [
        ((0.99 * LN_K, LN_K, 0.5), "uniform"),  # flat targets, whatever the student does
        ((0.92 * LN_K, LN_K, 0.02 * LN_K), "uniform"),  # near-flat and matched: KL -> 0
        ((0.92 * LN_K, LN_K, 0.2 * LN_K), None),  # near-flat but the student still learns
        ((0.1, 0.2, 0.01), "one_hot"),
        ((0.5 * LN_K, 0.9 * math.log(32), 0.3), None),  # healthy
    ],
)
def test_window_means_decide(signals: tuple[float, float, float], kind: str | None) -> None:
    det = CollapseDetector(K, warmup_steps=5, patience=10, batch_outputs=32)
    found = _feed(det, signals, 14)  # 5 of warm-up + 9: the window is not full yet
    assert found is None
    found = det.update(14, *signals)
    assert (found[0] if found else None) == kind


def test_the_window_survives_a_checkpoint_and_an_old_one_is_dropped() -> None:
    det = CollapseDetector(K, warmup_steps=0, patience=3, batch_outputs=32)
    _feed(det, (1.0, 2.0, 0.5), 2)
    again = CollapseDetector(K, warmup_steps=0, patience=3, batch_outputs=32)
    again.load_state(det.state())
    assert list(again.history) == list(det.history) == [(1.0, 2.0, 0.5)] * 2
    again.load_state([4.1, 4.1])  # a window saved by the detector that read entropy only
    assert list(again.history) == []


SHARP = {"teacher_temp": 0.04, "warmup_teacher_temp": 0.04}  # the Fashion-MNIST preset's
RUNS: dict[str, tuple[dict[str, float], str | None, int]] = {
    # paper Sec. 5.3 / Fig. 7: both operations -> learns; a sharp teacher whose batch uses
    # many prototypes (run past the step where "centering only" is flagged)
    "both": ({**SHARP}, None, 200),
    # sharpening only: the centre stays 0 (momentum 1) -> one-hot (flagged at step 20)
    "sharpening only": ({**SHARP, "center_momentum": 1.0}, "one_hot", 300),
    # centering only: teacher temperature = the student's 0.1 -> uniform (step 140)
    "centering only": ({"teacher_temp": 0.1, "warmup_teacher_temp": 0.1}, "uniform", 300),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_tiny_runs_collapse_as_the_paper_says(name: str, tmp_path: Path) -> None:
    loss, kind, steps = RUNS[name]
    cfg = tiny_dict(
        warmup_epochs=0,
        synthetic_size=256,  # 16 steps per epoch
        train={"epochs": 20, "max_steps": steps, "collapse_patience_steps": 20},
    )
    cfg["loss"].update(loss)
    result = train(build_config(cfg, []), str(tmp_path))
    if kind is None:
        assert result.status == "SUCCEEDED" and result.collapse is None, result.collapse
        assert result.step == steps
        return
    assert result.status == "COLLAPSED", (result.status, result.metrics)
    assert result.collapse is not None and result.collapse["kind"] == kind, result.collapse
    assert result.step < steps  # within the run
    evidence = result.collapse
    if kind == "one_hot":
        assert evidence["teacher_batch_entropy"] <= 0.4 * evidence["ln_batch"]
        assert evidence["teacher_entropy"] <= evidence["teacher_batch_entropy"]
    else:
        assert evidence["teacher_entropy"] >= 0.9 * evidence["ln_k"]
        assert evidence["kl"] <= 0.1 * evidence["ln_k"]


@pytest.mark.parametrize("watch_from", [None, 0])
def test_collapse_warmup_steps_lets_the_detector_watch_during_the_lr_warm_up(
    watch_from: int | None, tmp_path: Path
) -> None:
    """A teacher flat from the first step (temperature 1: no sharpening at all): the default
    waits out the 10-epoch lr warm-up (160 steps) and the 40-step run ends unflagged;
    watching from step 0 stops it once the 10-step window is full."""
    cfg = tiny_dict(
        warmup_epochs=10,
        synthetic_size=256,  # 16 steps per epoch
        train={
            "epochs": 20,
            "max_steps": 40,
            "collapse_patience_steps": 10,
            "collapse_warmup_steps": watch_from,
        },
    )
    cfg["loss"].update({"teacher_temp": 1.0, "warmup_teacher_temp": 1.0})
    result = train(build_config(cfg, []), str(tmp_path))
    if watch_from is None:
        assert result.status == "SUCCEEDED" and result.collapse is None
        return
    assert result.status == "COLLAPSED" and result.collapse is not None
    assert result.collapse["kind"] == "uniform" and result.step == 10
