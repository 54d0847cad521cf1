"""The official DINO training step next to ours: same model, crops, batch and head, one run.

``DINO_OFFICIAL_DIR=/path/to/dino python -m benchmarks.official_step [--configs A B]
[--reps 3] [--reps-b 1] [--steps 1] [--compile] [--attention-sweep] [--name official_step]``

The official code (facebookresearch/dino: ``vision_transformer.py``, ``utils.py``,
``main_dino.py``) is imported from a checkout *outside* this repository, named by
``DINO_OFFICIAL_DIR``; none of it is copied into the project. Get one with
``git clone https://github.com/facebookresearch/dino``.

Variants, interleaved (rep 1 of every variant, then rep 2 ...) and all fed the same pre-made
crops (augmentation is not timed; ``benchmarks/augmentation_throughput.py`` times it):

official       their ViT (hand-written attention), ``DINOHead``, ``MultiCropWrapper``,
               ``DINOLoss``, ``torch.optim.AdamW(get_params_groups(student))``,
               ``clip_gradients``, ``cancel_gradients_last_layer`` and the EMA loop of
               ``train_one_epoch``; fp32 on a CPU, their fp16 path (autocast + GradScaler) on
               a GPU. Built for the config's global crop size (``img_size=[global_size]``).
ours_fp32      this project's step (``benchmarks.step_throughput.Harness``), fp32.
ours_bf16      the same under bf16 autocast: where the hardware has bf16 units, or ``--bf16``.
ours_<p>_compiled   and ``torch.compile`` on both backbones (``--compile``).
ours_<p>_<k>   with ``--attention-sweep``: each explicit ``train.attention`` kernel ``k``.

Reported per config: images/s per rep and their median, the median per-rep ratio to the
official step, the FLOPs per image (torch's FLOP counter over our fp32 step), the measured
matmul peaks and the images/s they would allow, the ``auto`` attention choices with their
timings, and the top operators by self time of each variant (``torch.profiler``). Writes
``results/<name>.{json,md}`` with the CPU model, flags, load average and torch version.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._common import machine, matmul_gflops, median, write_json, write_text
from benchmarks.step_throughput import CONFIGS, Harness, Variant, official_ema
from dino_core.config import build_config
from dino_core.models.attention import KERNELS, measured_timings, plan_state
from dino_core.runtime import Runtime, bf16_is_fast, detect_runtime

ENV = "DINO_OFFICIAL_DIR"
REPO = Path(__file__).resolve().parents[1]
OFFICIAL_FILES = ("vision_transformer.py", "utils.py", "main_dino.py")
HOW = (
    "get a checkout outside this repository with `git clone "
    "https://github.com/facebookresearch/dino /some/dir` and set DINO_OFFICIAL_DIR=/some/dir"
)
# The configs: A = 12 x 192 ViT, patch 4, 2x32 + 6x16 px, batch 64, K 4096;
# B = ViT-S/16, 2x224 + 10x96 px, batch 16, K 65536 (the paper's best multi-crop setting).
SETTINGS = {"A": "tiny32", "B": "vits16"}
OFFICIAL_ARCH = {"A": ("vit_tiny", 4), "B": ("vit_small", 16)}  # official 192 / 384 wide
CLIP = 3.0  # paper/official per-parameter gradient clip
EMA = 0.996  # paper/official teacher momentum (start)
TEACHER_TEMP = 0.04  # paper/official teacher temperature (start)
WEIGHT_DECAY = 0.04  # paper/official weight decay (start)
LR_PER_256 = 0.0005  # paper/official base learning rate per 256 images


class OfficialCheckoutError(RuntimeError):
    """No usable official checkout: the message says what was wrong and how to get one."""


def official_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The checkout named by ``DINO_OFFICIAL_DIR``; refused inside this repository."""
    raw = env.get(ENV)
    if not raw:
        raise OfficialCheckoutError(f"{ENV} is not set: {HOW}")
    path = Path(raw).expanduser().resolve()
    if path == REPO or path.is_relative_to(REPO):
        raise OfficialCheckoutError(
            f"{ENV}={raw} is inside this repository ({REPO}); the official code must stay "
            f"outside it and is never copied into the project: {HOW}"
        )
    missing = [f for f in OFFICIAL_FILES if not (path / f).is_file()]
    if missing:
        raise OfficialCheckoutError(
            f"{ENV}={raw} has no {', '.join(missing)}: not a facebookresearch/dino checkout; {HOW}"
        )
    return path


@dataclass(frozen=True)
class Official:
    vits: ModuleType  # vision_transformer.py
    utils: ModuleType
    main: ModuleType  # main_dino.py


def import_official(path: Path) -> Official:
    """Import the official modules under their own names (``main_dino`` imports ``utils``)."""
    names = ("utils", "vision_transformer", "main_dino")
    for name in names:
        mod = sys.modules.get(name)
        if mod is not None and Path(str(getattr(mod, "__file__", ""))).resolve().parent != path:
            raise OfficialCheckoutError(
                f"another module named {name!r} ({getattr(mod, '__file__', '?')}) is already "
                "imported; run the benchmark in a fresh process"
            )
    sys.path.insert(0, str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # their torch.cuda.amp / weight_norm deprecations
            mods = [importlib.import_module(n) for n in names]
    finally:
        sys.path.remove(str(path))
    return Official(utils=mods[0], vits=mods[1], main=mods[2])


@contextlib.contextmanager
def single_process_group(device: torch.device) -> Iterator[None]:
    """A world of one: the official ``DINOLoss.update_center`` all-reduces unconditionally."""
    if dist.is_initialized():
        yield
        return
    with tempfile.TemporaryDirectory() as tmp:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"file://{tmp}/pg", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


class OfficialStep:
    """The official model, loss and optimiser for one config; ``step`` is the body of their
    ``train_one_epoch`` (lr/wd set per group, forward, loss, backward, clip, step, EMA)."""

    def __init__(self, off: Official, config: str, device: torch.device, fp16: bool) -> None:
        cfg = build_config(CONFIGS[SETTINGS[config]])
        arch, patch = OFFICIAL_ARCH[config]
        build = getattr(off.vits, arch)
        size = [cfg.crops.global_size]
        h = cfg.head
        head_kw = {"nlayers": h.nlayers, "hidden_dim": h.hidden_dim,
                   "bottleneck_dim": h.bottleneck_dim}  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nn.utils.weight_norm is deprecated in torch 2.x
            s_vit = build(patch_size=patch, img_size=size, drop_path_rate=cfg.model.drop_path_rate)
            t_vit = build(patch_size=patch, img_size=size)
            dim = s_vit.embed_dim
            s_head = off.vits.DINOHead(dim, h.out_dim, use_bn=h.use_bn,
                                       norm_last_layer=h.norm_last_layer, **head_kw)  # fmt: skip
            t_head = off.vits.DINOHead(dim, h.out_dim, h.use_bn, **head_kw)
        self.student: nn.Module = off.utils.MultiCropWrapper(s_vit, s_head).to(device)
        self.teacher: nn.Module = off.utils.MultiCropWrapper(t_vit, t_head).to(device)
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False
        ncrops = 2 + cfg.crops.local_number
        self.loss: nn.Module = off.main.DINOLoss(
            h.out_dim, ncrops, TEACHER_TEMP, TEACHER_TEMP, 0, 1,
            student_temp=cfg.loss.student_temp, center_momentum=cfg.loss.center_momentum,
        ).to(device)  # fmt: skip
        self.optimizer = torch.optim.AdamW(off.utils.get_params_groups(self.student))
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None
        self.off, self.device = off, device
        self.lr = LR_PER_256 * cfg.train.batch_size / 256
        self.batch_size = cfg.train.batch_size
        self.precision = "fp16" if fp16 else "fp32"

    def step(self, crops: list[torch.Tensor]) -> float:
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = self.lr
            if i == 0:  # only the first group is regularised
                group["weight_decay"] = WEIGHT_DECAY
        with torch.autocast(self.device.type, torch.float16, enabled=self.scaler is not None):
            t_out = self.teacher(crops[:2])
            s_out = self.student(crops)
            loss = self.loss(s_out, t_out, 0)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"official step: loss is {loss.item()}")
        self.optimizer.zero_grad()
        utils = self.off.utils
        if self.scaler is None:
            loss.backward()
            utils.clip_gradients(self.student, CLIP)
            utils.cancel_gradients_last_layer(1, self.student, 1)  # past the frozen epoch
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            utils.clip_gradients(self.student, CLIP)
            utils.cancel_gradients_last_layer(1, self.student, 1)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        official_ema(self.teacher, self.student, EMA)
        return float(loss.detach())


@dataclass
class Runner:
    """One variant: its name, precision, attention choice and step function."""

    name: str
    precision: str
    attention: str
    step: Callable[[list[torch.Tensor]], float]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(r: Runner, crops: list[torch.Tensor], steps: int, device: torch.device) -> float:
    """Images per second over ``steps`` steps."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        r.step(crops)
    _sync(device)
    return steps * crops[0].shape[0] / (time.perf_counter() - t0)


def top_operators(
    r: Runner, crops: list[torch.Tensor], steps: int, device: torch.device, top: int
) -> list[dict[str, Any]]:
    """The ``top`` operators by self time (device time on a GPU) over ``steps`` steps."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            r.step(crops)
        _sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = list(prof.key_averages())
    total = sum(float(getattr(e, attr)) for e in events) or 1.0
    events.sort(key=lambda e: float(getattr(e, attr)), reverse=True)
    return [
        {
            "op": e.key,
            "self_ms_per_step": float(getattr(e, attr)) / 1e3 / steps,
            "share": float(getattr(e, attr)) / total,
            "calls_per_step": e.count / steps,
        }
        for e in events[:top]
    ]


def flops_per_image(r: Runner, crops: list[torch.Tensor]) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        r.step(crops)
    return float(counter.get_total_flops()) / crops[0].shape[0]


def runners(
    off: Official, config: str, rt: Runtime, args: argparse.Namespace
) -> tuple[list[Runner], list[torch.Tensor]]:
    cuda = rt.device.type == "cuda"
    official = OfficialStep(off, config, rt.device, fp16=cuda)
    out = [Runner("official", official.precision, "math (theirs)", official.step)]
    base = CONFIGS[SETTINGS[config]]
    precisions = ["fp32"]
    if bf16_is_fast(rt.device) or args.bf16:
        precisions.append("bf16")
    specs = [Variant(f"ours_{p}", p, "batched", False) for p in precisions]
    if args.compile:
        specs += [Variant(f"ours_{p}_compiled", p, "batched", False, compile=True)
                  for p in precisions]  # fmt: skip
    if args.attention_sweep:
        specs += [
            Variant(f"ours_{p}_{k}", p, "batched", False, attention=k)
            for p in precisions
            for k in KERNELS
            if p != "fp32" or not k.endswith("_fp32")
        ]
    harnesses = [Harness(base, v, rt) for v in specs]
    crops = harnesses[0]._crops()
    for h in harnesses:
        out.append(Runner(h.v.name, h.cfg.train.precision, h.cfg.train.attention, h.step))
    return out, crops


def run_config(
    off: Official,
    config: str,
    args: argparse.Namespace,
    partial: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Time, count and profile every variant of ``config``; ``partial`` receives the images/s
    after each rep (a run stopped on a loaded host keeps the reps it finished)."""
    rt = detect_runtime(build_config(CONFIGS[SETTINGS[config]]).train)
    rs, crops = runners(off, config, rt, args)
    for r in rs:  # warm-up: allocator, auto attention measurement, compilation
        for _ in range(3 if "compiled" in r.name else 1):
            r.step(crops)
    ips: dict[str, list[float]] = {r.name: [] for r in rs}
    loads: list[list[float]] = []  # 1-min load average after each rep of all variants
    reps = args.reps_b if config == "B" and args.reps_b else args.reps
    for rep in range(reps):
        for r in rs:
            ips[r.name].append(timed(r, crops, args.steps, rt.device))
            print(f"{config} rep {rep} {r.name}: {ips[r.name][-1]:.2f} img/s", flush=True)
        loads.append([round(x, 2) for x in os.getloadavg()])
        partial({"partial": f"{rep + 1} of {reps} reps", "images_per_s": ips,
                 "load_average_per_rep": loads})  # fmt: skip
    ref = ips["official"]
    ours32 = next(r for r in rs if r.name == "ours_fp32")
    gflop = flops_per_image(ours32, crops) / 1e9
    peaks = {str(d).removeprefix("torch."): matmul_gflops(rt.device, d)
             for d in (torch.float32, torch.bfloat16)}  # fmt: skip
    profiles = {r.name: top_operators(r, crops, args.profile_steps, rt.device, args.top)
                for r in rs if r.name in args.profile or not args.profile}  # fmt: skip
    return {
        "device": str(rt.device),
        "precision": {r.name: r.precision for r in rs},
        "attention": {r.name: r.attention for r in rs},
        "reps": reps,
        "images_per_s": ips,
        "load_average_per_rep": loads,
        "median_images_per_s": {k: median(v) for k, v in ips.items()},
        "median_ratio_vs_official": {
            k: median([a / b for a, b in zip(v, ref, strict=True)]) for k, v in ips.items()
        },
        "gflop_per_image": gflop,
        "matmul_peak_gflops": peaks,
        "limit_images_per_s": {k: v / gflop for k, v in peaks.items()},
        "attention_plan": plan_state(),
        "attention_timings_ms": measured_timings(),
        "profile_top_self_time": profiles,
    }


def _emulated(dtype: str, device: str) -> str:
    """A note for bf16 where the device has no bf16 units: its matmuls are emulated (a few
    GFLOP/s at most), so the figure is no ceiling for a bf16 run, which is then not timed."""
    if dtype != "bfloat16" or bf16_is_fast(torch.device(device)):
        return ""
    return " (emulated: no bf16 units)"


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Training step: the official DINO code vs this project",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['torch_threads']} torch "
        f"threads), flags {' '.join(m['flags'])}; CUDA {m['cuda']}; torch {m['torch']}; load "
        f"average {m['load_average']} at start, {res['machine_after']} at end. Official code: "
        f"{res['official_commit']}. Interleaved reps (rep 1 of every variant, then rep 2 ...) "
        f"of {res['steps_per_rep']} step(s) per variant, all on the same pre-made crops.",
    ]
    for config in SETTINGS:
        if config not in res:
            continue
        r = res[config]
        lines += [
            "",
            f"## Config {config} ({SETTINGS[config]}), {r['device']}, {r['reps']} reps",
            "",
            "| variant | precision | attention | median img/s | ratio vs official "
            "| img/s per rep |",
            "|---|---|---|---|---|---|",
        ]
        for v, x in r["median_images_per_s"].items():
            reps = ", ".join(f"{y:.2f}" for y in r["images_per_s"][v])
            lines.append(
                f"| {v} | {r['precision'][v]} | {r['attention'][v]} | {x:.2f} | "
                f"{r['median_ratio_vs_official'][v]:.2f}x | {reps} |"
            )
        off = r["median_images_per_s"]["official"]
        limits = ", ".join(
            f"{d} {p:.3g} GFLOP/s{_emulated(d, r['device'])} -> "
            f"{r['limit_images_per_s'][d]:.3g} img/s ({r['limit_images_per_s'][d] / off:.3g}x "
            "official)"
            for d, p in r["matmul_peak_gflops"].items()
        )
        lines += [
            "",
            f"Load average (1, 5, 15 min) after each rep: {r['load_average_per_rep']}.",
            "",
            f"{r['gflop_per_image']:.2f} GFLOP per image; matmul peaks: {limits}.",
        ]
        if r["attention_timings_ms"]:
            lines += ["", "Auto attention (best ms per call; chosen kernel in bold):", ""]
            for key, t in r["attention_timings_ms"].items():
                pick = r["attention_plan"].get(key)
                cells = ", ".join(f"**{k} {v:.2f}**" if k == pick else f"{k} {v:.2f}"
                                  for k, v in t.items())  # fmt: skip
                lines.append(f"- `{key.split('|', 1)[1]}`: {cells}")
        for v, ops in r["profile_top_self_time"].items():
            lines += ["", f"Top operators by self time, {v}:", "",
                      "| operator | ms/step | share | calls/step |",
                      "|---|---|---|---|"]  # fmt: skip
            for o in ops:
                lines.append(
                    f"| `{o['op']}` | {o['self_ms_per_step']:.1f} | {100 * o['share']:.1f}% | "
                    f"{o['calls_per_step']:.0f} |"
                )
    return "\n".join(lines) + "\n"


def _commit(path: Path) -> str:
    """The checkout's commit (``git rev-parse HEAD``), as the results record it (not its
    absolute path: that names this machine, not the code)."""
    try:
        sha = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        sha = "unknown commit (not a git checkout)"
    return f"facebookresearch/dino at {sha}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reps-b", type=int, default=None, help="reps for B (default --reps)")
    ap.add_argument("--steps", type=int, default=1, help="steps per timed rep")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bf16", action="store_true", help="time bf16 even without bf16 units")
    ap.add_argument("--compile", action="store_true", help="add the compiled variants")
    ap.add_argument("--attention-sweep", action="store_true", help="each explicit kernel too")
    ap.add_argument("--profile", nargs="*", default=[], help="variants to profile (default all)")
    ap.add_argument("--profile-steps", type=int, default=1)
    ap.add_argument("--top", type=int, default=12, help="operators per profile")
    ap.add_argument("--name", default="official_step", help="results file stem")
    args = ap.parse_args()
    try:
        path = official_dir()
    except OfficialCheckoutError as err:
        sys.exit(f"benchmarks.official_step: {err}")
    off = import_official(path)
    if args.threads:
        torch.set_num_threads(args.threads)
    res: dict[str, Any] = {"machine": machine(), "steps_per_rep": args.steps,
                           "official_commit": _commit(path)}  # fmt: skip
    device = detect_runtime(build_config(CONFIGS["tiny32"]).train).device
    with single_process_group(device):
        for config in args.configs:

            def partial(part: dict[str, Any], config: str = config) -> None:
                write_json(args.name, {**res, config: part})

            res[config] = run_config(off, config, args, partial)
            res["machine_after"] = machine()["load_average"]
            write_json(args.name, res)  # after each config: a slow B keeps A's figures
            write_text(args.name, "md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
