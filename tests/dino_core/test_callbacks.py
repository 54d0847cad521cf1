"""The callback list: an epoch's metrics reach every callback whatever the list's order."""

from __future__ import annotations

from itertools import permutations
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dino_core.callbacks import Callback, CallbackList, EpochEvent
from dino_core.cli import train_command
from tests.dino_core.conftest import tiny_config


class Measures(Callback):
    """An evaluation: it reports a number at the end of the epoch."""

    def __init__(self, key: str = "knn_top1_k20") -> None:
        self.key = key

    def epoch_metrics(self, event: EpochEvent) -> dict[str, float]:
        return {self.key: 50.0}


class Records(Callback):
    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []

    def on_epoch_end(self, event: EpochEvent) -> None:
        self.seen.append(dict(event.metrics))


def test_every_callback_sees_every_epoch_metric_in_any_order() -> None:
    for order in permutations(["records", "measures", "other"]):
        rec = Records()
        made = {"records": rec, "measures": Measures(), "other": Measures("attn_iou_best_head")}
        event = EpochEvent(0, 4, {"epoch_loss": 1.0})
        CallbackList([made[name] for name in order]).on_epoch_end(event)
        expected = {"epoch_loss": 1.0, "knn_top1_k20": 50.0, "attn_iou_best_head": 50.0}
        assert rec.seen == [expected], order
        assert event.metrics == {"epoch_loss": 1.0}  # the frozen event is not mutated


def test_two_callbacks_reporting_one_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match="'knn_top1_k20'"):
        CallbackList([Measures(), Measures()]).on_epoch_end(EpochEvent(0, 4, {}))
    with pytest.raises(ValueError, match="'epoch_loss'"):
        CallbackList([Measures("epoch_loss")]).on_epoch_end(EpochEvent(0, 4, {"epoch_loss": 1}))


def test_dino_train_prints_the_epoch_knn(tmp_path: Path) -> None:
    cfg = tiny_config(
        **{"train.epochs": 1, "eval.knn_every_epochs": 1, "eval.knn_k": 5},
        **{"eval.knn_train_limit": 32, "eval.knn_test_limit": 16},
    )
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    app = typer.Typer()
    app.command()(train_command)
    res = CliRunner().invoke(app, [str(config), "--output", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "epoch 0: knn_top1_k5=" in res.output
