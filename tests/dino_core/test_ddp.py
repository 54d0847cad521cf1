"""train() under an already-initialised torch.distributed (2 gloo processes on CPU)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dino_core.callbacks import Callback, StepEvent
from dino_core.metrics_file import read_metrics
from dino_core.train import train
from tests.dino_core.conftest import tiny_config

OVERRIDES = {"crops.pipeline": "per_image", "train.epochs": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordLoss(Callback):
    all_ranks = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_step_end(self, event: StepEvent) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": event.step, "loss": event.metrics["loss"]}) + "\n")


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        cfg = tiny_config(**OVERRIDES)
        train(cfg, out, [RecordLoss(Path(out + f".rank{rank}.jsonl"))])
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_matches_single_process(tmp_path: Path) -> None:
    single = train(tiny_config(**OVERRIDES), str(tmp_path / "single"))
    mp.start_processes(
        _worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, start_method="spawn"
    )
    one = [r["loss"] for r in read_metrics(str(tmp_path / "single"))]
    two = [r["loss"] for r in read_metrics(str(tmp_path / "ddp"))]
    assert len(one) == len(two) == single.step
    # same global batch, same crops: the curves agree up to float reduction order
    for a, b in zip(one, two, strict=True):
        assert abs(a - b) < 1e-4 * max(1.0, abs(a)), (one, two)
    # every rank saw the same (all-reduced) loss; side effects only on rank 0
    r0 = (tmp_path / "ddp.rank0.jsonl").read_text().splitlines()
    r1 = (tmp_path / "ddp.rank1.jsonl").read_text().splitlines()
    assert r0 == r1 and len(r0) == single.step
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == [
        "checkpoint-00000004.pt",
        "checkpoint-00000008.pt",
    ]
