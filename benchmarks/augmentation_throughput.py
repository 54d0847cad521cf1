"""Input-pipeline throughput against what the fast training step consumes.

``python -m benchmarks.augmentation_throughput [--reps 2] [--batches 2]``

For each crop setting (the Fashion-MNIST preset, the tiny 32/16 px config, ViT-S 224/96 px)
it times the per-image torchvision pipeline (in-process, one intra-op thread, as the loader
runs it with ``num_workers=0``) and the batched tensor pipeline (``crops.pipeline=batched``),
interleaved, and, for the preset, the fast step's own images/s measured in the same run.
Writes ``results/augmentation_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from benchmarks._common import machine, median, peak_memory, write_json, write_text
from benchmarks.step_throughput import CONFIGS, Harness, Variant
from dino_core.config import DinoConfig, build_config, load_config
from dino_core.data import build_train_loader, load_dataset
from dino_core.runtime import detect_runtime

PRESET = "configs/fashion_mnist_cpu.yaml"


def settings() -> dict[str, DinoConfig]:
    out = {"fashion_mnist_cpu": load_config(PRESET)}
    for name in ("tiny32", "vits16"):
        out[name] = build_config(CONFIGS[name], {"train.epochs": 1, "optim.warmup_epochs": 0,
                                                 "loss.warmup_teacher_temp_epochs": 0})  # fmt: skip
    return out


def pipeline_rate(cfg: DinoConfig, pipeline: str, batches: int) -> tuple[float, float]:
    """(images/s, peak MiB) of ``batches`` loader batches of ``pipeline``."""
    c = cfg.model_copy(deep=True)
    c.crops.pipeline = pipeline  # type: ignore[assignment]
    dataset = load_dataset(c.data, c.data.split)
    loader = build_train_loader(c, dataset, device="cpu")
    it = loader.epoch(0)
    next(it)  # first batch: loader set-up
    with peak_memory(torch.device("cpu")) as mem:
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        dt = time.perf_counter() - t0
    return batches * c.train.batch_size / dt, mem["peak_mib"]


def run(reps: int, batches: int, step_steps: int) -> dict[str, Any]:
    res: dict[str, Any] = {"machine": machine(), "reps": reps, "batches_per_rep": batches}
    cfgs = settings()
    preset = cfgs["fashion_mnist_cpu"]
    rt = detect_runtime(preset.train)
    harness = Harness(
        {k: v for k, v in preset.to_dict().items()}, Variant("fast", "auto", "batched", False), rt
    )
    harness.step()
    rates: dict[str, dict[str, list[float]]] = {n: {"per_image": [], "batched": []} for n in cfgs}
    mem: dict[str, dict[str, list[float]]] = {n: {"per_image": [], "batched": []} for n in cfgs}
    step_rates: list[float] = []
    for r in range(reps):
        for name, cfg in cfgs.items():
            for pipe in ("per_image", "batched"):
                x, m = pipeline_rate(cfg, pipe, batches)
                rates[name][pipe].append(x)
                mem[name][pipe].append(m)
                print(f"rep {r} {name} {pipe}: {x:.1f} img/s", flush=True)
        x, _ = harness.timed(step_steps)
        step_rates.append(x)
        print(f"rep {r} fashion_mnist_cpu fast step: {x:.1f} img/s", flush=True)
    step = median(step_rates)
    res["fast_step_images_per_s_fashion_mnist_cpu"] = step_rates
    for name in cfgs:
        res[name] = {
            "images_per_s": rates[name],
            "median_images_per_s": {k: median(v) for k, v in rates[name].items()},
            "peak_mib_median": {k: median(v) for k, v in mem[name].items()},
        }
    fm = res["fashion_mnist_cpu"]["median_images_per_s"]
    res["pipeline_over_step_fashion_mnist_cpu"] = {k: v / step for k, v in fm.items()}
    res["machine_after"] = machine()["load_average"]
    return res


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    step = median(res["fast_step_images_per_s_fashion_mnist_cpu"])
    lines = [
        "# Augmentation throughput vs the fast step",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; load average "
        f"{m['load_average']} at start, {res['machine_after']} at end. {res['reps']} "
        f"interleaved reps x {res['batches_per_rep']} batches.",
        "",
        "| crops | per-image img/s | batched img/s | batched / per-image | peak MiB per-image "
        "/ batched |",
        "|---|---|---|---|---|",
    ]
    for name in ("fashion_mnist_cpu", "tiny32", "vits16"):
        r = res[name]
        pi, ba = r["median_images_per_s"]["per_image"], r["median_images_per_s"]["batched"]
        mm = r["peak_mib_median"]
        lines.append(
            f"| {name} | {pi:.1f} | {ba:.1f} | {ba / pi:.2f}x | "
            f"{mm['per_image']:.0f} / {mm['batched']:.0f} |"
        )
    ratio = res["pipeline_over_step_fashion_mnist_cpu"]
    lines += [
        "",
        f"Fast step (Fashion-MNIST preset) consumes {step:.1f} img/s in the same run: the "
        f"batched pipeline supplies {ratio['batched']:.1f}x that, the per-image one "
        f"{ratio['per_image']:.1f}x.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--step-steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = run(args.reps, args.batches, args.step_steps)
    write_json("augmentation_throughput", res)
    write_text("augmentation_throughput", "md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
