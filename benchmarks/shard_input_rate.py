"""Input rate from shards next to the training step's consumption, Fashion-MNIST preset.

Writes the first ``--images`` Fashion-MNIST training images as shards (local disk, 1,000 per
shard), then, in alternating rounds so background load hits every variant alike:

- input: images/s of the shard loader (``ShardLoader.epoch``) over ``--batches`` batches of the
  preset's 64, with 0 (in-process), 1 and 2 DataLoader workers, for the preset's ``batched``
  crops (workers decode, the main process crops the batch) and ``per_image`` crops (workers
  decode and crop); per worker = total / workers;
- consumption: images/s of the preset's training step (configs/fashion_mnist_cpu.yaml, the
  trainer's own ``images_per_s``, median over ``--steps`` steps after 3 of warm-up) on the
  in-memory data set, and on the shards with 2 workers (both on these 2 cores).

Writes ``benchmarks/results/shard_input_rate.{json,md}`` with the CPU model, flags and load.
Run: ``python -m benchmarks.shard_input_rate`` (niced when the machine is busy: the md says).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import machine, median, write_json, write_text
from dino_core.callbacks import Callback, StepEvent
from dino_core.config import DinoConfig, load_config
from dino_core.data import build_train_loader, load_dataset
from dino_core.data.shard_writer import write_shards
from dino_core.train import train

PRESET = Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist_cpu.yaml"


class StepRates(Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_step_end(self, event: StepEvent) -> None:
        self.rates.append(event.metrics["images_per_s"])


def _cfg(overrides: dict[str, Any]) -> DinoConfig:
    return load_config(PRESET, [f"{k}={v}" for k, v in overrides.items()])


def input_rate(cfg: DinoConfig, batches: int) -> float:
    """Images/s of the loader over ``batches`` batches, timed from the first batch on."""
    loader = build_train_loader(cfg, load_dataset(cfg.data, cfg.data.split))
    it = loader.epoch(0)
    next(it)  # worker start-up and the first read are not the steady rate
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        crops = next(it)
        n += int(crops[0].shape[0])
    return n / (time.perf_counter() - t0)


def step_rate(cfg: DinoConfig, steps: int, out: Path) -> float:
    rates = StepRates()
    train(cfg, str(out), [rates], resume=False)
    return median(rates.rates[3:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    before = machine()
    tmp = Path(tempfile.mkdtemp(prefix="dino-shard-bench-"))
    memory = {"data.limit": args.images, "train.log_every_steps": 1}
    source = load_dataset(_cfg(memory).data, "train")
    t0 = time.perf_counter()
    write_shards(source, str(tmp / "shards" / "train"), shard_size=1000)
    write_s = time.perf_counter() - t0
    shards = {"data.dataset": "shards", "data.root": str(tmp / "shards")}
    variants = [(p, w) for p in ("batched", "per_image") for w in (0, 1, 2)]
    inputs: dict[str, list[float]] = {f"{p}/{w}": [] for p, w in variants}
    steps: dict[str, list[float]] = {"memory": [], "shards_2_workers": []}
    run = {"train.max_steps": args.steps + 3, "train.checkpoint_every_steps": 0}
    for r in range(args.rounds):
        for p, w in variants:
            cfg = _cfg({**shards, "crops.pipeline": p, "data.num_workers": w})
            inputs[f"{p}/{w}"].append(input_rate(cfg, args.batches))
        steps["memory"].append(step_rate(_cfg({**memory, **run}), args.steps, tmp / f"m{r}"))
        cfg = _cfg({**shards, **run, "data.num_workers": 2, "train.log_every_steps": 1})
        steps["shards_2_workers"].append(step_rate(cfg, args.steps, tmp / f"s{r}"))
    consumption = median(steps["memory"])
    rows = []
    for p, w in variants:
        rate = median(inputs[f"{p}/{w}"])
        rows.append(
            {
                "pipeline": p,
                "workers": w,
                "images_per_s": round(rate, 1),
                "per_worker": round(rate / max(w, 1), 1),
                "x_step_consumption": round(rate / consumption, 2),
            }
        )
    result = {
        "benchmark": "shard_input_rate",
        "preset": "configs/fashion_mnist_cpu.yaml",
        "images": args.images,
        "shard_size": 1000,
        "shard_write_images_per_s": round(len(source) / write_s, 1),
        "batches_timed": args.batches,
        "rounds": args.rounds,
        "niced": os.nice(0),
        "machine_before": before,
        "machine_after": machine(),
        "input": rows,
        "step_images_per_s": {k: round(median(v), 1) for k, v in steps.items()},
        "raw": {"input": inputs, "step": steps},
    }
    write_json("shard_input_rate", result)
    write_text("shard_input_rate", "md", _markdown(result))
    print(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    m = r["machine_before"]
    lines = [
        "# Input rate from shards vs the step's consumption (Fashion-MNIST preset)",
        "",
        f"`python -m benchmarks.shard_input_rate`: {r['images']} images in shards of "
        f"{r['shard_size']} on local disk, batches of 64, median of {r['rounds']} rounds "
        f"({r['batches_timed']} batches each).",
        f"CPU: {m['cpu']}, {m['logical_cpus']} logical CPUs, flags {' '.join(m['flags'])}; "
        f"load average {m['load_average']} before, {r['machine_after']['load_average']} after; "
        f"niceness {r['niced']}"
        + (" (the machine was busy: figures are lower bounds)" if r["niced"] else "")
        + ".",
        "",
        "| crops | DataLoader workers | images/s | per worker | x step consumption |",
        "|---|---|---|---|---|",
    ]
    for row in r["input"]:
        lines.append(
            f"| {row['pipeline']} | {row['workers']} | {row['images_per_s']} | "
            f"{row['per_worker']} | {row['x_step_consumption']} |"
        )
    s = r["step_images_per_s"]
    lines += [
        "",
        f"Step consumption (preset, fp32, its 2 threads): {s['memory']} images/s from memory; "
        f"{s['shards_2_workers']} images/s reading the shards with 2 workers on the same cores.",
        f"Writing the shards (PNG encode + tar): {r['shard_write_images_per_s']} images/s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
