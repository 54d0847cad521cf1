"""MLflow tracking overhead as a share of the DINO step time (worker's tracker vs none).

Within one process the same config trains ``--steps`` steps with and without the worker's
:class:`~worker.tracker.MlflowTracker` (default logging interval ``train.log_every_steps``,
system metrics on, embedded sqlite store), alternating the order each repeat. A timing
callback stamps every step end; the mean step time after ``--warmup`` steps is compared
per repeat (paired) and overall. The warm-up (20 steps) leaves out the one-off start of a
tracked run (creating the run, ~100 params, the config artifact: a few seconds of writer
work), so the figure is the steady per-step cost the target is about. CPU time (process, all
threads: the MLflow writer included) is the figure to read on a host with steal time; wall
time is reported beside it. Writes ``benchmarks/results/tracking_overhead.json`` and
prints one markdown table row.

    .venv/bin/python -m benchmarks.tracking_overhead [--repeats 4 --steps 100 --warmup 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dino_core.callbacks import Callback, StepEvent  # noqa: E402
from dino_core.config import DinoConfig, build_config  # noqa: E402
from dino_core.train import train  # noqa: E402
from worker.env import apply_worker_env  # noqa: E402

apply_worker_env()  # a program: telemetry off before the worker's modules import MLflow

from worker.contracts import MLFLOW_FINISHED  # noqa: E402
from worker.mlflow_run import RunTarget  # noqa: E402
from worker.tracker import MlflowTracker  # noqa: E402
from worker.tracking_session import TrackingSession  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "tracking_overhead.json"


def bench_config(steps: int) -> DinoConfig:
    """A small ViT on synthetic data, one long epoch, default log interval (10 steps); one
    torch thread, which keeps step times stable on a shared 2-core machine."""
    return build_config(
        {
            "model": {"arch": "vit_custom", "patch_size": 4, "embed_dim": 64, "depth": 4,
                      "num_heads": 4, "drop_path_rate": 0.1},
            "head": {"out_dim": 1024, "hidden_dim": 256, "bottleneck_dim": 64},
            "crops": {"global_size": 32, "local_size": 16, "local_number": 2,
                      "pipeline": "batched"},
            "data": {"dataset": "synthetic", "synthetic_size": 32 * (steps + 1),
                     "synthetic_image_size": 32},
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
            "train": {"epochs": 1, "batch_size": 32, "max_steps": steps, "device": "cpu",
                      "threads": 1},
        }
    )  # fmt: skip


class StepTimer(Callback):
    """Wall-clock and process CPU time (all threads, the MLflow writer included) per step."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def on_step_end(self, event: StepEvent) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def mean_step(self, warmup: int) -> tuple[float, float]:
        """Mean (wall, cpu) seconds per step after ``warmup`` steps."""
        first, last = warmup, len(self.wall) - 1
        n = last - first
        return (self.wall[last] - self.wall[first]) / n, (self.cpu[last] - self.cpu[first]) / n


def one_run(
    cfg: DinoConfig, tracked: bool, uri: str, art: str, warmup: int, rep: int
) -> tuple[float, float]:
    """Train once; mean (wall, cpu) seconds per step, with or without the MLflow tracker."""
    timer = StepTimer()
    callbacks: list[Callback] = [timer]
    session = None
    if tracked:
        job = f"bench-{rep}-{time.time_ns()}"
        target = RunTarget(uri, "tracking-overhead", job, job, artifact_location=art)
        session = TrackingSession(target).start()
        session.wait_open(300)
        # per-step cost only: the one-off upload of the final checkpoint is left out
        tracker = MlflowTracker(
            session, log_every=cfg.train.log_every_steps, upload_final_checkpoint=False
        )
        callbacks.append(tracker)
    with tempfile.TemporaryDirectory(prefix="dino-bench-") as out:
        train(cfg, out, callbacks, resume=False)
    if session is not None:
        session.close(MLFLOW_FINISHED, 300)
    return timer.mean_step(warmup)


def _summary(rows: list[dict[str, float]], kind: str) -> dict[str, float]:
    without = statistics.fmean(r[f"without_{kind}_s"] for r in rows)
    with_ = statistics.fmean(r[f"with_{kind}_s"] for r in rows)
    paired = [r[f"with_{kind}_s"] / r[f"without_{kind}_s"] - 1.0 for r in rows]
    return {
        "step_without_s": without,
        "step_with_s": with_,
        "overhead_ratio_of_means": with_ / without - 1.0,
        "overhead_ratio_paired_median": statistics.median(paired),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    cfg = bench_config(args.steps)
    home = Path(tempfile.mkdtemp(prefix="dino-bench-home-"))
    uri, art = f"sqlite:///{home / 'mlflow.db'}", (home / "mlartifacts").as_uri()
    one_run(cfg, True, uri, art, args.warmup, -1)  # create the store, warm caches
    rows: list[dict[str, float]] = []
    for rep in range(args.repeats):
        order = [False, True] if rep % 2 == 0 else [True, False]
        times = {t: one_run(cfg, t, uri, art, args.warmup, rep) for t in order}
        print(f"repeat {rep}: untracked {times[False][0]:.3f} s/step, tracked "
              f"{times[True][0]:.3f} s/step (wall)", file=sys.stderr, flush=True)  # fmt: skip
        rows.append(
            {
                "without_wall_s": times[False][0],
                "with_wall_s": times[True][0],
                "without_cpu_s": times[False][1],
                "with_cpu_s": times[True][1],
            }
        )
    wall, cpu = _summary(rows, "wall"), _summary(rows, "cpu")
    load = os.getloadavg()
    result: dict[str, Any] = {
        "what": "MLflow tracker overhead per training step (embedded sqlite store), "
        "tracked vs untracked runs of the same config, interleaved",
        "log_every_steps": cfg.train.log_every_steps,
        "steps_per_run": args.steps,
        "warmup_steps_dropped": args.warmup,
        "repeats": args.repeats,
        "wall": wall,
        "cpu": cpu,
        "per_repeat": rows,
        "budget_ratio": 0.02,
        "config": {
            "arch": "vit_custom",
            "embed_dim": cfg.model.embed_dim,
            "depth": cfg.model.depth,
            "batch_size": cfg.train.batch_size,
            "crops": f"2x{cfg.crops.global_size} + "
            f"{cfg.crops.local_number}x{cfg.crops.local_size} px",
            "out_dim": cfg.head.out_dim,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_end": [round(x, 2) for x in load],
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"| MLflow tracking overhead, log every {cfg.train.log_every_steps} steps | "
        f"wall {100 * wall['overhead_ratio_paired_median']:+.2f}% / "
        f"CPU {100 * cpu['overhead_ratio_paired_median']:+.2f}% of step time "
        f"(paired medians of {args.repeats} interleaved repeats) | "
        f"untracked step {1000 * wall['step_without_s']:.0f} ms wall |"
    )


if __name__ == "__main__":
    main()
