"""Training-step throughput: the reference path against our fast path, same model and crops.

``python -m benchmarks.step_throughput [--reps 3] [--steps 1] [--configs tiny32 vits16]``

reference  fp32 eager, per-image torchvision augmentation (in-process), the official
           code's step re-created here (``benchmarks/official_step.py`` runs the official
           code itself): hand-written attention (``train.attention=math``), AdamW without
           foreach, per-parameter gradient clipping and EMA loops.
fast       precision ``auto`` (bf16 where the hardware has bf16 matmul units: AMX or
           AVX512-BF16 CPUs, CUDA GPUs; fp32 elsewhere), the batched tensor multi-crop,
           the measured attention kernel (``train.attention=auto``), foreach AdamW /
           clipping / EMA (fused AdamW on GPU).
fast_bf16  the fast path with bf16 autocast forced (to show what bf16 costs on this CPU).
fast_compiled  the fast path with ``torch.compile`` on the backbones (``--compile``).

The variants are interleaved (rep 1 of every variant, then rep 2 ...) inside one process;
the figure reported is the median over reps of fast / reference images per second. Peak
memory: CUDA max allocated, or the sampled RSS growth of the rep on CPU. Writes
``results/step_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from benchmarks._common import machine, median, peak_memory, write_json, write_text
from dino_core.config import DinoConfig, build_config
from dino_core.data import build_train_loader, load_dataset
from dino_core.models.attention import plan_attention
from dino_core.optim import clip_per_parameter
from dino_core.runtime import Runtime, bf16_is_fast, detect_runtime
from dino_core.state import TrainingState
from dino_core.step import step_loss
from dino_core.teacher import ema_update
from dino_core.train import _build_state

CONFIGS: dict[str, dict[str, Any]] = {
    # 12 layers, d=192, patch 4, 2x32 + 6x16 px, batch 64, K=4096 (issue #4)
    "tiny32": {
        "model": {"arch": "vit_custom", "patch_size": 4, "embed_dim": 192, "depth": 12,
                  "num_heads": 3, "in_chans": 3},
        "head": {"out_dim": 4096},
        "crops": {"global_size": 32, "local_size": 16, "local_number": 6},
        "data": {"dataset": "synthetic", "synthetic_size": 256, "synthetic_image_size": 32},
        "train": {"batch_size": 64},
    },
    # ViT-S/16, 2x224 + 10x96 px, batch 16, K=65536 (paper's best multi-crop setting)
    "vits16": {
        "model": {"arch": "vit_small_patch16_224"},
        "head": {"out_dim": 65536},
        "crops": {"global_size": 224, "local_size": 96, "local_number": 10},
        "data": {"dataset": "synthetic", "synthetic_size": 64, "synthetic_image_size": 224},
        "train": {"batch_size": 16},
    },
}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str  # "fp32" | "bf16" | "auto"
    pipeline: str
    official_step: bool
    compile: bool = False
    attention: str = "auto"  # train.attention; the reference uses the official "math"


def variant_config(base: dict[str, Any], v: Variant, rt_device: torch.device) -> DinoConfig:
    prec = v.precision
    if prec == "auto":
        prec = "bf16" if bf16_is_fast(rt_device) else "fp32"
    return build_config(
        base,
        {"crops.pipeline": v.pipeline, "train.precision": prec, "train.epochs": 1,
         "optim.warmup_epochs": 0, "loss.warmup_teacher_temp_epochs": 0,
         "train.compile": v.compile, "train.attention": v.attention},
    )  # fmt: skip


def official_clip(model: nn.Module, clip: float) -> None:
    """Official ``clip_gradients``: a Python loop over parameters."""
    for p in model.parameters():
        if p.grad is not None:
            norm = p.grad.data.norm(2)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                p.grad.data.mul_(coef)


@torch.no_grad()
def official_ema(teacher: nn.Module, student: nn.Module, m: float) -> None:
    """Official EMA: one update per parameter pair."""
    for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
        pt.data.mul_(m).add_((1 - m) * ps.detach().data)


class Harness:
    """One variant's model, optimiser and loader; runs the trainer's step body."""

    def __init__(self, base: dict[str, Any], v: Variant, rt: Runtime) -> None:
        self.v = v
        self.rt = rt
        self.cfg = variant_config(base, v, rt.device)
        self.st: TrainingState = _build_state(self.cfg, rt)
        if v.official_step:
            groups = self.st.optimizer.param_groups
            self.st.optimizer = torch.optim.AdamW(
                [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups],
                lr=1e-4,
                foreach=False,
            )
        if v.compile:
            plan_attention(self.st.student, self.cfg, rt.device, 1)  # as the trainer does
            self.st.student.backbone.compile()
            self.st.teacher.backbone.compile()
        dataset = load_dataset(self.cfg.data, "train")
        self.loader = build_train_loader(self.cfg, dataset, device=rt.device)
        self._it: Iterator[list[torch.Tensor]] = iter(())
        self._epoch = 0

    def _crops(self) -> list[torch.Tensor]:
        nxt = next(self._it, None)
        if nxt is None:
            self._it = iter(self.loader.epoch(self._epoch))
            self._epoch += 1
            nxt = next(self._it)
        return nxt

    def step(self, crops: list[torch.Tensor] | None = None) -> float:
        """One training step on ``crops`` (default: the next batch of this variant's loader):
        the trainer's forward and loss (:func:`dino_core.step.step_loss`), then either the
        official loops or the trainer's foreach clipping and EMA."""
        st = self.st
        crops = self._crops() if crops is None else crops
        loss = step_loss(st, crops, 0.04, 0, self.rt).loss
        st.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.v.official_step:
            official_clip(st.student, 3.0)
            st.optimizer.step()
            official_ema(st.teacher, st.student, 0.996)
        else:
            clip_per_parameter(st.student, 3.0)
            st.optimizer.step()
            ema_update(st.teacher, st.student, 0.996)
        return float(loss.detach())

    def timed(self, steps: int) -> tuple[float, float]:
        """(images/s, peak MiB) over ``steps`` steps, data preparation included."""
        if self.rt.device.type == "cuda":
            torch.cuda.synchronize()
        with peak_memory(self.rt.device) as mem:
            t0 = time.perf_counter()
            for _ in range(steps):
                self.step()
            if self.rt.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        return steps * self.cfg.train.batch_size / dt, mem["peak_mib"]


def run(names: list[str], variants: list[Variant], reps: int, steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine(), "reps": reps, "steps_per_rep": steps}
    for name in names:
        base = CONFIGS[name]
        rt = detect_runtime(build_config(base).train)
        hs = [Harness(base, v, rt) for v in variants]
        for h in hs:  # warm-up (allocator, compile, first-epoch setup)
            h.step()
        ips: dict[str, list[float]] = {v.name: [] for v in variants}
        mem: dict[str, list[float]] = {v.name: [] for v in variants}
        for r in range(reps):
            for h in hs:
                x, m = h.timed(steps)
                ips[h.v.name].append(x)
                mem[h.v.name].append(m)
                print(f"{name} rep {r} {h.v.name}: {x:.2f} img/s, +{m:.0f} MiB", flush=True)
        ref = ips["reference"]
        out[name] = {
            "precision": {h.v.name: h.cfg.train.precision for h in hs},
            "images_per_s": ips,
            "median_images_per_s": {k: median(v) for k, v in ips.items()},
            "peak_mib_median": {k: median(v) for k, v in mem.items()},
            "median_ratio_vs_reference": {
                k: median([a / b for a, b in zip(v, ref, strict=True)]) for k, v in ips.items()
            },
        }
        del hs
    out["machine_after"] = machine()["load_average"]
    return out


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Step throughput: reference vs fast path",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, "
        f"AMX-BF16 {m['amx_bf16']}, AVX512-BF16 {m['avx512_bf16']}, CUDA {m['cuda']}; "
        f"load average {m['load_average']} at start, {res['machine_after']} at end.",
        f"{res['reps']} interleaved reps x {res['steps_per_rep']} step(s) per variant.",
        "",
        "| config | variant | precision | median img/s | median ratio vs reference "
        "| peak MiB (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name in CONFIGS:
        if name not in res:
            continue
        r = res[name]
        for v, x in r["median_images_per_s"].items():
            lines.append(
                f"| {name} | {v} | {r['precision'][v]} | {x:.2f} | "
                f"{r['median_ratio_vs_reference'][v]:.2f}x | {r['peak_mib_median'][v]:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-bf16", action="store_true", help="skip the forced-bf16 variant")
    ap.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    ap.add_argument("--name", default="step_throughput", help="results file stem")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [
        Variant("reference", "fp32", "per_image", official_step=True, attention="math"),
        Variant("fast", "auto", "batched", official_step=False),
    ]
    if not args.no_bf16:
        variants.append(Variant("fast_bf16", "bf16", "batched", official_step=False))
    if args.compile:
        variants.append(Variant("fast_compiled", "auto", "batched", False, compile=True))
    res = run(args.configs, variants, args.reps, args.steps)
    write_json(args.name, res)
    write_text(args.name, "md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
