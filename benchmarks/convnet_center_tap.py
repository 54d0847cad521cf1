"""The preset ResNet's forward + backward with and without the centre-tap 3×3 convolutions.

``python -m benchmarks.convnet_center_tap [--reps 5] [--config configs/fashion_mnist_cpu.yaml]``

The backbone of the config (ResNet-10-T, stem stride 4, channels-last, 1 channel) on a batch
of global crops (``train.batch_size`` × ``crops.global_size`` px) and one of local crops
(4 per image × ``crops.local_size`` px), each timed forward + backward with every 3×3
convolution computed in full and with :mod:`dino_core.models.center_tap` (the 3×3
convolutions that meet 1×1 maps use their centre tap), interleaved reps, best and median
per variant, in one process. Writes ``results/convnet_center_tap.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import torch
import torch.nn as nn

from benchmarks._common import machine, median, write_json, write_text
from dino_core.config import load_config
from dino_core.models import build_backbone
from dino_core.models.center_tap import CenterTapConv2d, use_full_convolutions


def _full(model: nn.Module) -> nn.Module:
    full = copy.deepcopy(model)
    use_full_convolutions(full)
    return full


def _time(model: nn.Module, x: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    t = time.perf_counter()
    model(x).sum().backward()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/fashion_mnist_cpu.yaml")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--locals-per-image", type=int, default=4)
    args = ap.parse_args()
    cfg = load_config(args.config, [])
    torch.set_num_threads(cfg.train.threads or torch.get_num_threads())
    centre, _ = build_backbone(cfg.model, cfg.crops.global_size)
    variants = {"full": _full(centre), "centre_tap": centre}
    for m in variants.values():
        m.to(memory_format=torch.channels_last).train()
    n, c = cfg.train.batch_size, cfg.model.in_chans
    batches = {
        f"{n}x{cfg.crops.global_size}px": (n, cfg.crops.global_size),
        f"{n * args.locals_per_image}x{cfg.crops.local_size}px": (
            n * args.locals_per_image,
            cfg.crops.local_size,
        ),
    }
    at_start = machine()
    rows: dict[str, Any] = {}
    for label, (b, size) in batches.items():
        x = torch.randn(b, c, size, size).contiguous(memory_format=torch.channels_last)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(2):  # warm-up: oneDNN primitives are created on first use
            for m in variants.values():
                _time(m, x)
        for _ in range(args.reps):
            for name, m in variants.items():
                times[name].append(_time(m, x))
        rows[label] = {
            name: {"median_ms": round(1000 * median(t), 1), "best_ms": round(1000 * min(t), 1)}
            for name, t in times.items()
        }
        rows[label]["speedup_median"] = round(
            median(times["full"]) / median(times["centre_tap"]), 2
        )
    out = {
        "benchmark": "convnet_center_tap",
        "config": args.config,
        "arch": cfg.model.arch,
        "swapped_convolutions": sum(isinstance(m, CenterTapConv2d) for m in centre.modules()),
        "machine_at_start": at_start,
        "machine_at_end": machine(),
        "forward_backward": rows,
    }
    write_json("convnet_center_tap", out)
    m = out["machine_at_start"]
    lines = [
        "# ResNet forward + backward: full 3×3 convolutions vs centre tap on 1×1 maps",
        "",
        f"CPU {m['cpu']}, flags {' '.join(m['flags'])}, {m['torch_threads']} torch threads, "
        f"torch {m['torch']}; load average {m['load_average']} at start, "
        f"{out['machine_at_end']['load_average']} at end. {args.config}: {cfg.model.arch}, "
        f"{out['swapped_convolutions']} convolutions swapped; {args.reps} interleaved reps.",
        "",
        "| batch | full: median ms | centre tap: median ms | speed-up |",
        "|---|---|---|---|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['full']['median_ms']} | {r['centre_tap']['median_ms']} "
            f"| {r['speedup_median']}x |"
        )
    print(write_text("convnet_center_tap", "md", "\n".join(lines) + "\n").read_text())


if __name__ == "__main__":
    main()
