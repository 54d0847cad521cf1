"""The learning benchmark: weighted k-NN of the teacher against training wall-clock.

``python -m benchmarks.knn_vs_time [--config configs/fashion_mnist_cpu.yaml] [--minutes 15]
[--every 50] [--run-dir DIR] [--name knn_vs_time] [--target 88]``

Trains the preset (``--config``) with its own schedule, stopped after ``--minutes`` of
wall-clock if it has not ended by then (0 = no limit; checkpoints every ``--every`` steps;
without ``--run-dir`` into ``/tmp/dino-<name>``), or reads an existing run directory (e.g. one
``dino train`` wrote), then scores every checkpoint's (or those of ``--steps``) teacher
features with the paper's weighted k-NN (k=20, T=0.07; ``--train-limit``/``--test-limit`` cut
the 60k/10k splits) and draws the random-init backbone and raw pixels as horizontal lines.
For a ViT on data with object masks it also scores the last checkpoint's attention masks
(60% of the CLS attention mass, paper Sec. 4.2) against the objects, next to random init.
Training time of a checkpoint is the sum of its steps' durations (from ``metrics.jsonl``).
Writes ``results/<name>.{json,md,png}``; the README's learning figures come from here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import (
    RESULTS,
    WallClockStop,
    machine,
    machine_line,
    write_json,
    write_text,
)
from dino_core.checkpoint import checkpoint_step, list_checkpoints
from dino_core.config import DinoConfig, load_config
from dino_core.eval.baselines import baseline_models
from dino_core.eval.monitor import monitor_data
from dino_core.eval.suite import EvalData, attention_mask_report, knn_report
from dino_core.models.loading import load_backbone
from dino_core.train import train

PRESET = "configs/fashion_mnist_cpu.yaml"


def step_times(run_dir: Path, batch: int) -> dict[int, float]:
    """Cumulative training seconds at each step (``batch / images_per_s`` summed)."""
    total, out = 0.0, {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        total += batch / max(float(row["images_per_s"]), 1e-9)
        out[int(row["step"])] = total
    return out


def knn(model: torch.nn.Module, data: EvalData, name: str) -> float:
    rep = knn_report(model, data, ks=[20], temperature=0.07, name=name)["k=20"]
    return float(rep["top1"])


def eval_data(cfg: DinoConfig, train_limit: int | None, test_limit: int | None) -> EvalData:
    """The preset's data for scoring: all of its splits, cut to the k-NN memory / test limits."""
    ev = cfg.model_copy(deep=True)
    ev.data.limit = None
    ev.eval.knn_train_limit, ev.eval.knn_test_limit = train_limit, test_limit
    return monitor_data(ev)


def attention_scores(path: str, cfg: DinoConfig, data: EvalData) -> dict[str, Any]:
    """Best-head and mean-map attention-mask IoU of the checkpoint's teacher and of random init
    (ViTs on data with object masks; otherwise ``{}``)."""
    if not cfg.model.is_vit or data.test.masks is None:
        return {}
    trained, _ = load_backbone(path)
    models = {"trained": trained, "random_init": baseline_models(cfg)["random_init"]}
    out: dict[str, Any] = {}
    for name, model in models.items():
        score = attention_mask_report(model, data.test, data.transform, name=name)
        out[name] = score.to_dict()
        print(f"attention-mask IoU {name}: best head {score.best_head_iou:.3f}", flush=True)
    return out


def evaluate(
    run_dir: Path,
    cfg: DinoConfig,
    train_limit: int | None,
    test_limit: int | None,
    steps: list[int] | None = None,
):
    data = eval_data(cfg, train_limit, test_limit)
    times = step_times(run_dir, cfg.train.batch_size)
    points = []
    for path in list_checkpoints(str(run_dir)):
        step = checkpoint_step(path)
        if steps and step not in steps:
            continue
        backbone, _ = load_backbone(path)
        acc = knn(backbone, data, f"step {step}")
        points.append({"step": step, "train_s": round(times.get(step, float("nan")), 1),
                       "knn_top1": acc})  # fmt: skip
        print(f"step {step}: {acc:.2f}%", flush=True)
    base = {n: knn(m, data, n) for n, m in baseline_models(cfg).items()}
    n_train = len(data.train) if data.train is not None else 0
    last = list_checkpoints(str(run_dir))[-1]
    return points, base, n_train, len(data.test), attention_scores(last, cfg, data)


def plot(res: dict[str, Any], path: Path, target: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p["train_s"] / 60 for p in res["points"]]
    ax.plot(xs, [p["knn_top1"] for p in res["points"]], "o-", label="DINO teacher (preset)")
    for name, style in (("random_init", ":"), ("raw_pixels", "--")):
        ax.axhline(res["baselines"][name], ls=style, color="grey", label=name.replace("_", " "))
    if target is not None:
        ax.axhline(target, ls="-.", color="red", lw=0.8, label=f"target {target:g}%")
    ax.set_xlim(left=0)
    ax.set_xlabel("training wall-clock (min, 2 CPU cores)")
    ax.set_ylabel(f"weighted k-NN top-1 (k=20), {res['n_train']}/{res['n_test']} images")
    arch = res["config"]["model.arch"]
    ax.set_title(f"{res['config']['data.dataset']}, {arch}; load avg {res['load_after'][0]:.1f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=PRESET, help="the preset to train (default: %(default)s)")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set teacher.momentum=0.98 (repeat)",
    )
    ap.add_argument(
        "--minutes",
        type=float,
        default=15.0,
        help="stop training after this many minutes (0: the whole schedule)",
    )
    ap.add_argument("--every", type=int, default=50, help="checkpoint every N steps")
    ap.add_argument("--run-dir", default=None, help="evaluate this run instead of training")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--steps", type=int, nargs="*", help="score only these checkpoint steps")
    ap.add_argument("--name", default="knn_vs_time", help="results/<name>.{json,md,png}")
    ap.add_argument("--target", type=float, default=None, help="draw a target line (%%)")
    args = ap.parse_args()
    info = machine()
    wall = None
    if args.run_dir:
        run_dir = Path(args.run_dir)
        cfg = load_config(run_dir / "config.yaml")
    else:
        run_dir = Path(f"/tmp/dino-{args.name}")
        cfg = load_config(args.config, [*args.overrides,
                                        f"train.checkpoint_every_steps={args.every}",
                                        "train.keep_checkpoints=1000"])  # fmt: skip
        stop = [WallClockStop(args.minutes * 60)] if args.minutes > 0 else []
        t0 = time.perf_counter()
        train(cfg, str(run_dir), stop, resume=False)
        wall = round(time.perf_counter() - t0, 1)
    torch.set_num_threads(cfg.train.threads or torch.get_num_threads())
    points, base, n_train, n_test, attention = evaluate(
        run_dir, cfg, args.train_limit, args.test_limit, args.steps
    )
    res = {"machine": info, "load_after": list(os.getloadavg()), "run_dir": run_dir.name,
           "config": cfg.flat(), "train_wall_s": wall, "points": points, "baselines": base,
           "attention_iou": attention, "n_train": n_train, "n_test": n_test}  # fmt: skip
    write_json(args.name, res)
    plot(res, RESULTS / f"{args.name}.png", args.target)
    rows = "\n".join(f"| {p['step']} | {p['train_s'] / 60:.1f} | {p['knn_top1']:.2f} |"
                     for p in points)  # fmt: skip
    attn = "".join(
        f"\nAttention-mask IoU (best head / mean map) {k}: {v['best_head_iou']:.3f} / "
        f"{v['mean_map_iou']:.3f}; best head's masks precision {v['best_head_precision']:.3f}, "
        f"recall {v['best_head_recall']:.3f}; attention mass on the object (most object-bound "
        f"head) {v['max_object_share']:.3f}, chance {v['object_area']:.3f}."
        for k, v in attention.items()
    )  # fmt: skip
    md = (
        f"# k-NN vs wall-clock, {cfg.data.dataset} {cfg.model.arch} (k=20, T=0.07, "
        f"{n_train} train / {n_test} test)\n\n"
        f"{machine_line(info)}; whole run {wall} s wall-clock; "
        f"random init {base['random_init']:.2f}%, raw pixels {base['raw_pixels']:.2f}%.{attn}"
        f"\n\n| step | train min | k-NN top-1 % |\n"
        f"|---|---|---|\n{rows}\n\n![curve]({args.name}.png)\n"
    )
    write_text(args.name, "md", md)
    print(md)


if __name__ == "__main__":
    main()
