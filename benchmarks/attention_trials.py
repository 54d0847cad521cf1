"""Attention trials: where the trained CLS attention goes, checkpoint by checkpoint.

``python -m benchmarks.attention_trials --trials benchmarks/trials/fashion_vit_attention.yaml
[--preset benchmarks/trials/fashion_vit_reg4_noise.yaml] [--minutes 5] [--every 300]
[--only NAME ...] [--out benchmarks/results/attention_trials_fashion_vit.jsonl]``
``python -m benchmarks.attention_trials --ceilings [--preset ...] [--test 10000]``

Each trial trains the ViT preset with its overrides (``{name: [override, ...]}``, as
``benchmarks.recipe_search``) for ``--minutes`` of wall-clock, one trial at a time with the
preset's threads, a checkpoint every ``--every`` steps; then every checkpoint's teacher (and,
first, the random-init backbone) is scored on the first ``--test`` test images: the
attention-mask IoU of the paper's 60 %-mass masks (best head, mean map; Sec. 4.2), the best
head's mask precision and recall, the share of each head's attention on object pixels against
chance, and the weighted k-NN (k=20, T=0.07) with the first ``--memory`` training images.
One JSON line per (trial, checkpoint), with the machine and load average. The learning curve of
the attention is the point: a map can find the object and still score a low IoU by being too
peaked to cover it.

``--ceilings`` scores reference maps instead of a network, on the preset's patch grid: uniform
attention, attention on the patches that hold any object pixel, attention proportional to each
patch's object pixels (the soft object mask), and the best set of whole patches per image (the
oracle: no patch-level mask scores more). They say what an IoU on this data can be.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from benchmarks._common import RESULTS, WallClockStop, machine, write_json
from benchmarks.knn_vs_time import eval_data, knn
from benchmarks.recipe_search import load_trials
from dino_core.checkpoint import checkpoint_step, list_checkpoints
from dino_core.config import load_config
from dino_core.eval.attention import upsample_patches
from dino_core.eval.baselines import baseline_models
from dino_core.eval.mask_score import image_mask_stats, mask_iou
from dino_core.eval.suite import EvalData, attention_mask_report, transformed_masks
from dino_core.models.loading import load_backbone
from dino_core.train import train

PRESET = Path("benchmarks/trials/fashion_vit_reg4_noise.yaml")


def score(model: nn.Module, data: EvalData, name: str) -> dict[str, Any]:
    """Attention-mask statistics and k-NN top-1 of one backbone."""
    s = attention_mask_report(model, data.test, data.transform, name=name)
    return {
        "best_head_iou": round(s.best_head_iou, 3),
        "mean_map_iou": round(s.mean_map_iou, 3),
        "iou_per_head": [round(v, 3) for v in s.per_head],
        "best_head_precision": round(s.best_head_precision, 3),
        "best_head_recall": round(s.best_head_recall, 3),
        "object_share_per_head": [round(v, 3) for v in s.object_share_per_head],
        "object_area": round(s.object_area, 3),
        "knn_top1": round(knn(model, data, name), 2),
    }


def run_trial(name: str, overrides: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    fixed = [f"train.checkpoint_every_steps={args.every}", "train.keep_checkpoints=1000"]
    cfg = load_config(args.preset, [*fixed, *overrides])  # a trial may set its own interval
    if not cfg.model.is_vit:
        raise SystemExit(f"trial {name!r}: model.arch={cfg.model.arch!r} has no attention")
    torch.set_num_threads(cfg.train.threads or torch.get_num_threads())
    run_dir = Path(args.workdir) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    res = train(cfg, str(run_dir), [WallClockStop(args.minutes * 60)], resume=False)
    head = {
        "trial": name,
        "overrides": overrides,
        "preset": str(args.preset),
        "minutes": args.minutes,
        "train_wall_s": round(time.perf_counter() - t0, 1),
        "final_step": res.step,
        "teacher_entropy": round(float(res.metrics.get("teacher_entropy", float("nan"))), 3),
        "machine": machine(),
    }
    data = eval_data(cfg, args.memory, args.test)
    rows = [{**head, "step": 0, "model": "random_init",
             **score(baseline_models(cfg)["random_init"], data, "random init")}]  # fmt: skip
    for path in list_checkpoints(str(run_dir)):
        backbone, _ = load_backbone(path)
        step = checkpoint_step(path)
        rows.append({**head, "step": step, "model": "teacher", **score(backbone, data, str(step))})
    shutil.rmtree(run_dir, ignore_errors=True)
    return rows


def reference_maps(object_fraction: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reference attention maps ``[B, 1, h, w]`` from each patch's object-pixel fraction."""
    tiny = 1e-6  # a map must hold mass: ties broken towards object patches
    f = object_fraction[:, None]
    return {
        "uniform": torch.ones_like(f),
        "object_patches": (f > 0).to(f.dtype) + tiny,
        "object_fraction": f + tiny,
    }


def oracle_iou(object_fraction: torch.Tensor, masks: torch.Tensor, patch: int) -> torch.Tensor:
    """Per image, the best IoU of any set of whole patches: the best prefix of the patches
    sorted by object fraction (adding a patch in that order is what can raise the IoU)."""
    b, h, w = object_fraction.shape
    order = object_fraction.flatten(1).argsort(dim=1, descending=True)
    chosen = torch.zeros(b, h * w, dtype=torch.bool)
    best = torch.zeros(b, dtype=torch.float64)
    for k in range(h * w):
        chosen[torch.arange(b), order[:, k]] = True
        up = upsample_patches(chosen.view(b, h, w), (patch, patch), masks.shape[-2:])
        best = torch.maximum(best, mask_iou(up, masks))
    return best


def ceilings(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(args.preset, [])
    data = eval_data(cfg, 1, args.test)
    masks = transformed_masks(data.test.masks, data.transform).bool()
    patch = cfg.model.patch_size
    h, w = masks.shape[-2] // patch, masks.shape[-1] // patch
    cut = masks[:, : h * patch, : w * patch].to(torch.float64)
    fraction = cut.reshape(-1, h, patch, w, patch).mean(dim=(2, 4))
    out: dict[str, Any] = {"preset": str(args.preset), "patch_size": patch, "images": len(masks)}
    for name, maps in reference_maps(fraction).items():
        out[name] = round(float(image_mask_stats(maps, masks, (patch, patch)).head_iou.mean()), 3)
    out["oracle_patch_mask"] = round(float(oracle_iou(fraction, masks, patch).mean()), 3)
    out["object_area"] = round(float(masks.double().mean()), 3)
    out["machine"] = machine()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=Path)
    p.add_argument("--preset", type=Path, default=PRESET)
    p.add_argument("--only", nargs="*", default=None, help="run these trials of the file")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--every", type=int, default=300)
    p.add_argument("--memory", type=int, default=10_000, help="k-NN memory: first N train")
    p.add_argument("--test", type=int, default=2_000, help="first N test images scored")
    p.add_argument("--workdir", default="/tmp/dino-attention-trials")
    p.add_argument("--out", type=Path, default=RESULTS / "attention_trials_fashion_vit.jsonl")
    p.add_argument("--ceilings", action="store_true", help="score reference maps, no training")
    args = p.parse_args(argv)
    if args.ceilings:
        res = ceilings(args)
        write_json(f"attention_ceilings_{Path(args.preset).stem}", res)
        print(json.dumps({k: v for k, v in res.items() if k != "machine"}), flush=True)
        return
    if args.trials is None:
        raise SystemExit("give --trials FILE (or --ceilings)")
    trials = load_trials(args.trials)
    unknown = sorted(set(args.only or []) - set(trials))
    if unknown:
        raise SystemExit(f"--only names trials not in {args.trials}: {unknown}")
    for name, overrides in trials.items():
        if args.only and name not in args.only:
            continue
        rows = run_trial(name, overrides, args)
        with args.out.open("a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        last = rows[-1]
        print(f"{name}: step {last['step']} IoU best head {last['best_head_iou']} "
              f"(random init {rows[0]['best_head_iou']}), object share "
              f"{max(last['object_share_per_head'])} (chance {last['object_area']}), k-NN "
              f"{last['knn_top1']} load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
