"""Recipe search: train a preset under several sets of overrides and score k-NN along the way.

``python -m benchmarks.recipe_search --trials benchmarks/trials/fashion_steps.yaml
[--preset configs/fashion_mnist_cpu.yaml] [--max-steps 2000] [--eval-every 250]
[--parallel 4] [--device auto] [--threads 2] [--out benchmarks/results/recipe_search.jsonl]
[--only NAME,NAME]``

The trials file maps a trial name to a list of dotted overrides (``loss.teacher_temp=0.05``).
Each trial trains the preset with its overrides, ``train.max_steps`` and a checkpoint every
``--eval-every`` steps, then scores every checkpoint with the paper's weighted k-NN (k=20,
T=0.07, teacher CLS, paper Sec. 4.1) on the preset's full train split as memory and its full
test split as queries (cut with ``--knn-train-limit`` / ``--knn-test-limit``). The first
checkpoint's evaluation also scores the random-init and raw-pixel baselines. One JSON line per
(trial, checkpoint) goes to ``--out``.

Trials are compared at equal optimiser steps (the schedules of a trial depend only on its
config, never on the device), so the search can run on a GPU and its best recipe is then timed
on the CPU with ``dino train``; or, with ``--minutes M``, at equal CPU time: each trial stops
after M minutes of training (give each trial the ``train.epochs`` its speed fits into M, so
its schedules end near the budget). Trials run ``--parallel`` at a time, each in its own
process; on a 2-core host run one at a time with 2 threads (two 1-thread trials side by side
ran at ~105 img/s each against 400 for one 2-thread trial, measured on AMD EPYC Zen 4).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PRESET = ROOT / "configs" / "fashion_mnist_cpu.yaml"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "recipe_search.jsonl"


def load_trials(path: Path) -> dict[str, list[str]]:
    """``{name: [override, ...]}`` from a YAML mapping; a clear error names a bad entry."""
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not raw:
        raise SystemExit(f"{path}: expected a mapping of trial name -> list of overrides")
    trials: dict[str, list[str]] = {}
    for name, overrides in raw.items():
        overrides = overrides or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise SystemExit(f"{path}: trial {name!r} must be a list of 'key=value' strings")
        trials[str(name)] = overrides
    return trials


def _knn_rows(run_dir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    from dino_core.checkpoint import checkpoint_step, list_checkpoints
    from dino_core.eval.run import DataOverrides, run_knn_eval

    rows = []
    data = DataOverrides(limit=args.knn_limit)
    for i, path in enumerate(list_checkpoints(str(run_dir))):
        step = checkpoint_step(path)
        out = run_knn_eval(
            path, data=data, out_dir=run_dir / "eval" / f"step{step}", device=args.device,
            ks=[20], temperature=0.07, baselines=(i == 0),
        )  # fmt: skip
        row = {"step": step, "n_train": out["n_train"], "n_test": out["n_test"]}
        for name, rep in out["results"].items():
            row[f"knn_top1_{name}"] = round(float(rep["k=20"]["top1"]), 2)
        rows.append(row)
    return rows


def run_trial(name: str, overrides: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train one trial and return its JSON rows (one per evaluated checkpoint)."""
    import torch

    from benchmarks._common import WallClockStop, machine
    from dino_core.config import load_config
    from dino_core.train import train

    torch.set_num_threads(args.threads)
    fixed = [
        f"train.max_steps={args.max_steps}",
        f"train.checkpoint_every_steps={args.eval_every}",
        "train.keep_checkpoints=1000",
        f"train.device={args.device}",
    ]
    cfg = load_config(args.preset, [*overrides, *fixed])
    run_dir = Path(args.workdir) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    budget = [WallClockStop(args.minutes * 60)] if args.minutes else []
    res = train(cfg, str(run_dir), budget, resume=False)
    train_s = time.perf_counter() - t0
    head = {
        "trial": name,
        "overrides": overrides,
        "preset": str(Path(args.preset).name),
        "status": res.status,
        "final_step": res.step,
        "batch_size": cfg.train.batch_size,
        "train_wall_s": round(train_s, 1),
        "budget_minutes": args.minutes,
        "machine": machine(),
        "device": args.device,
        "loss": round(float(res.metrics.get("loss", float("nan"))), 4),
        "loss_minus_lnK": round(float(res.metrics.get("loss_minus_lnK", float("nan"))), 4),
        "teacher_entropy": round(float(res.metrics.get("teacher_entropy", float("nan"))), 4),
    }
    rows = [{**head, **row} for row in _knn_rows(run_dir, args)]
    if not args.keep_runs:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return rows


def _worker(name: str, overrides: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    try:
        return run_trial(name, overrides, args)
    except Exception as err:  # one broken trial must not end the search
        return [{"trial": name, "overrides": overrides, "status": "ERROR", "error": repr(err)}]


def _star_worker(job: tuple[str, list[str], argparse.Namespace]) -> list[dict[str, Any]]:
    return _worker(*job)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=Path, required=True)
    p.add_argument("--preset", type=Path, default=DEFAULT_PRESET)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument(
        "--minutes", type=float, default=None,
        help="equal CPU time: stop each trial after this much training wall-clock (with a "
        "checkpoint); set train.epochs so that the schedule ends near the budget",
    )  # fmt: skip
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--knn-limit", type=int, default=None)
    p.add_argument("--workdir", default="/tmp/dino-recipe")
    p.add_argument("--keep-runs", action="store_true")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--only", default=None, metavar="NAME[,NAME...]",
        help="run only these trials of the file (a search cut short goes on where it stopped)",
    )  # fmt: skip
    return p.parse_args(argv)


def select_trials(
    trials: dict[str, list[str]], only: str | None, path: Path
) -> dict[str, list[str]]:
    """The trials named by ``--only`` (all when it is not given), in the file's order."""
    if only is None:
        return trials
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in trials]
    if unknown or not names:
        raise SystemExit(
            f"--only {only!r}: {path} has no trial {', '.join(map(repr, unknown)) or 'named'}; "
            f"its trials are {', '.join(trials)}"
        )
    return {n: o for n, o in trials.items() if n in names}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    trials = select_trials(load_trials(args.trials), args.only, args.trials)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DINO_DATA_DOWNLOAD", "0")
    ctx = mp.get_context("spawn")
    jobs = [(n, o, args) for n, o in trials.items()]
    # SIGTERM (kill, pkill) unwinds through the pool's `with`, which terminates the trial
    # processes; without this they are orphaned and keep training.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with ctx.Pool(args.parallel, maxtasksperchild=1) as pool:
        for rows in pool.imap_unordered(_star_worker, jobs):  # written as each trial ends
            with args.out.open("a") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
            for row in rows:
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
