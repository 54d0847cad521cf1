"""train() under an already-initialised torch.distributed (2 gloo processes on CPU)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dino_core.callbacks import Callback, StepEvent
from dino_core.checkpoint import load_checkpoint
from dino_core.metrics_file import read_metrics
from dino_core.train import train
from tests.dino_core.conftest import tiny_config

OVERRIDES = {"crops.pipeline": "per_image", "train.epochs": 2}
# drop path draws from each rank's global RNG; checkpoints at steps 3, 4 (epoch end) and 6
RESUME = {**OVERRIDES, "model.drop_path_rate": 0.1, "train.checkpoint_every_steps": 3}
CRASH_AT = 5


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


def _worker(rank: int, world: int, port: int, out: str, options: dict[str, Any]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        cfg = tiny_config(**{**OVERRIDES, **options})
        train(cfg, out, [RecordLoss(Path(out + f".rank{rank}.jsonl"))])
    finally:
        dist.destroy_process_group()


class Crash(Exception):
    pass


class CrashAt(Callback):
    all_ranks = True  # every rank dies at the same step, like a lost node ending the group

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, event: StepEvent) -> None:
        if event.step == self.step:
            raise Crash(f"killed after step {event.step}")


def _resume_worker(rank: int, world: int, port: int, out: str) -> None:
    """Uninterrupted run, a run that dies at step CRASH_AT, then its resume: one group."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        train(tiny_config(**RESUME), out + "/full")
        with contextlib.suppress(Crash):
            train(tiny_config(**RESUME), out + "/cut", [CrashAt(CRASH_AT)])
        if rank == 0:
            shutil.copytree(out + "/cut", out + "/crashed")  # as the crash left it
        dist.barrier()
        train(tiny_config(**RESUME), out + "/cut")  # resumes from step 4
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_resumed_two_process_run_with_drop_path_is_bitwise_exact(tmp_path: Path) -> None:
    mp.start_processes(
        _resume_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn"
    )
    crashed = tmp_path / "crashed" / "checkpoints"
    assert sorted(p.name for p in crashed.iterdir())[-1] == "checkpoint-00000004.pt"
    rank0, rank1 = load_checkpoint(str(crashed / "checkpoint-00000004.pt"))["rng_ranks"]
    assert not torch.equal(rank0["torch"], rank1["torch"])  # each rank its own stream
    last = "checkpoints/checkpoint-00000008.pt"
    a = load_checkpoint(str(tmp_path / "full" / last))["student"]
    b = load_checkpoint(str(tmp_path / "cut" / last))["student"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    full, cut = read_metrics(str(tmp_path / "full")), read_metrics(str(tmp_path / "cut"))
    assert [r["step"] for r in cut] == list(range(1, 9))
    assert [r["loss"] for r in cut] == [r["loss"] for r in full]


# Sinkhorn-Knopp (DINOv2) all-reduces its sums: 2 ranks compute the targets of 1 process
@pytest.mark.parametrize(
    "options", [{}, {"loss.centering": "sinkhorn_knopp"}], ids=["ema", "sinkhorn_knopp"]
)
def test_two_process_gloo_matches_single_process(tmp_path: Path, options: dict[str, Any]) -> None:
    single = train(tiny_config(**{**OVERRIDES, **options}), str(tmp_path / "single"))
    mp.start_processes(
        _worker,
        args=(2, _free_port(), str(tmp_path / "ddp"), options),
        nprocs=2,
        start_method="spawn",
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


# KoLeo and the iBOT masks are per rank (as in DINOv2), so only completion and agreement
ALL_V2 = {
    "loss.centering": "sinkhorn_knopp",
    "loss.koleo_weight": 0.1,
    "loss.ibot_weight": 1.0,
    "ibot.separate_head": True,
    "model.num_registers": 2,
    "optim.layerwise_decay": 0.9,
    "train.epochs": 1,
}


def test_two_process_run_with_every_dinov2_component(tmp_path: Path) -> None:
    mp.start_processes(
        _worker,
        args=(2, _free_port(), str(tmp_path / "ddp"), ALL_V2),
        nprocs=2,
        start_method="spawn",
    )
    rows = read_metrics(str(tmp_path / "ddp"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["loss_ibot"] > 0 and math.isfinite(r["loss_koleo"]) for r in rows)
    r0 = (tmp_path / "ddp.rank0.jsonl").read_text().splitlines()
    assert r0 == (tmp_path / "ddp.rank1.jsonl").read_text().splitlines()
