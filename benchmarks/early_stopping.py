"""Compute saved by a grid's early stopping on Fashion-MNIST, with a known-bad combination.

One run, two grids of the same four combinations (``loss.teacher_temp`` 0.04, 0.055, 0.07 and
0.1; 0.1 equals the student temperature: no sharpening, the paper's Sec. 5.3 uniform-collapse
case) on the ``fashion_mnist_cpu`` preset cut to ``--images`` images and ``--epochs`` epochs,
each run followed by a k-NN evaluation, every combination once per seed (``--seeds``, so the
decision is taken on the seed mean as in production) and the grid's random-init / raw-pixel
k-NN baselines computed once per grid: the full grid, then the same grid with
``early_stopping: {rungs: [1], reduction_factor: 2}`` (the best half train on after epoch 1).
Both run through the production loop (:func:`orchestrator.loop.run_orchestrator`) and the real
worker on a local Ray with ``--cpus`` slots, ``reuse: false`` (the second grid must not take
the first one's results).

Reported per grid: CPU-seconds held (sum over attempts of claim -> end x the job's CPUs),
epochs trained, and the final k-NN per combination (mean ± std over the seeds); then the ratio
early-stopping / full and whether the surviving combinations rank in the same order as in the
full grid. Writes ``results/<name>.json``, ``<name>.md`` and both grids' summary figures
(``<name>_full.png``, ``<name>_asha.png``, :func:`orchestrator.ablation.figure.to_png`).
Usage::

    python -m benchmarks.early_stopping [--cpus 2] [--images 3000] [--epochs 4] [--seeds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks._common import RESULTS, machine, write_json
from worker.contracts import BASELINES, PRETRAIN, STOPPED_EARLY

REPO = Path(__file__).resolve().parents[1]
TEMPS = [0.04, 0.055, 0.07, 0.1]
ES = {"metric": "knn_top1", "rungs": [1], "reduction_factor": 2}


def _base(images: int, epochs: int) -> dict[str, Any]:
    cfg = yaml.safe_load((REPO / "configs" / "fashion_mnist_cpu.yaml").read_text())
    cfg["data"]["limit"] = images
    # an epoch is one pass of the ``images`` subset, not the preset's 60,000-image epoch
    cfg["train"].update(epochs=epochs, threads=1, checkpoint_every_steps=0, epoch_images=None)
    # the preset's momentum, loss, flip and crops when results/early_stopping.* were measured
    # (EMA 0.98 since docs/recipe_search.md sec. 12, KoLeo since sec. 15, no flip since
    # sec. 17): the recorded k-NN figures stay reproducible
    cfg["teacher"]["momentum"] = 0.99
    cfg["loss"]["koleo_weight"] = 0.0
    cfg["crops"]["flip_p"] = 0.5
    cfg["crops"]["local_number"] = 0  # 4 locals since sec. 19
    cfg["teacher"]["final_momentum"] = 1.0  # 0.99 since sec. 20
    cfg["eval"] = {
        **cfg.get("eval", {}),
        "knn_every_epochs": 1,
        "knn_train_limit": images,
        "knn_test_limit": 1000,
        "attention_every_epochs": 0,
    }
    return dict(cfg)


def _usage(db: Any, grid_id: str) -> dict[str, Any]:
    from sqlalchemy import select

    from orchestrator.models import Attempt, Job

    with db.session() as s:
        jobs = {j.id: j for j in s.scalars(select(Job).where(Job.grid_id == grid_id))}
        attempts = s.scalars(select(Attempt).where(Attempt.job_id.in_(list(jobs)))).all()
        cpu_s = {PRETRAIN: 0.0, "eval": 0.0, BASELINES: 0.0}
        for a in attempts:
            if a.ended_at is None:
                continue
            job = jobs[a.job_id]
            held = (a.ended_at - a.claimed_at).total_seconds() * job.resources["num_cpus"]
            cpu_s[job.kind if job.kind in cpu_s else "eval"] += held
        epochs = 0
        for j in jobs.values():  # a stopped run trained to the rung it paused at
            if j.kind == PRETRAIN:
                stopped = j.status == STOPPED_EARLY
                epochs += int(j.until_epoch or 0) if stopped else j.config["train"]["epochs"]
        return {
            "cpu_seconds": {k: round(v, 1) for k, v in cpu_s.items()},
            "cpu_seconds_total": round(sum(cpu_s.values()), 1),
            "pretrain_epochs": epochs,
            "attempts": len(attempts),
        }


def _results(db: Any, user: Any, grid_id: str) -> Any:
    from orchestrator.ablation import grid_results
    from orchestrator.service import get_grid, grid_summary

    return grid_results(get_grid(db, user, grid_id).name, grid_summary(db, user, grid_id))


def _table(results: Any) -> list[dict[str, Any]]:
    """Per combination: its value, status, the k-NN mean / std / n over seeds, the stop."""
    keep = ["loss.teacher_temp", "status", "knn_top1", "knn_top1_std", "knn_top1_n"]
    keep += ["stopped_at_epoch", "stop_value"]
    return [{k: row.get(k) for k in keep} for row in results.table]


def _run_grid(db: Any, user: Any, request: Any, timeout_s: float) -> tuple[str, float]:
    from orchestrator.service import get_grid, submit_grid

    t = time.time()
    grid = submit_grid(db, user, request)
    while get_grid(db, user, grid.id).finished_at is None:
        if time.time() - t > timeout_s:
            raise TimeoutError(f"grid {grid.id} did not end within {timeout_s:g} s")
        time.sleep(2.0)
    return grid.id, time.time() - t


def _ranking(rows: list[dict[str, Any]], temps: list[float]) -> list[float]:
    scored = [r for r in rows if r["loss.teacher_temp"] in temps]
    return [r["loss.teacher_temp"] for r in sorted(scored, key=lambda r: -(r["knn_top1"] or 0))]


def _figures(name: str, grids: dict[str, Any]) -> None:
    from orchestrator.ablation.figure import to_png

    for tag, results in grids.items():
        (RESULTS / f"{name}_{tag}.png").write_bytes(to_png(results))


def _fmt(mean: Any, std: Any) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}")


def _markdown(out: dict[str, Any]) -> str:
    g, m = out["grid"], out["machine_at_start"]
    lines = [
        f"# Early stopping on a Fashion-MNIST grid ({out['benchmark']})",
        "",
        f"CPU: {m.get('cpu')}; load average at start {m.get('load_average')}, at end "
        f"{out['machine_at_end'].get('load_average')}. "
        f"Grid: loss.teacher_temp {g['teacher_temps']}, "
        f"{g['images']} images, {g['epochs']} epochs, seeds 0-{g['seeds'] - 1}, "
        f"{g['slots']} one-CPU slots; early stopping {g['early_stopping']}.",
        "",
        "| grid | CPU-s pretrain | CPU-s eval | CPU-s baselines | CPU-s total | epochs | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for tag in ("full", "early_stopping"):
        u = out[tag]
        c = u["cpu_seconds"]
        lines.append(
            f"| {tag} | {c[PRETRAIN]} | {c['eval']} | {c[BASELINES]} | {u['cpu_seconds_total']} "
            f"| {u['pretrain_epochs']} | {u['wall_s']} |"
        )
    lines += [
        "",
        f"Early stopping / full: **{out['ratio_cpu_seconds']}x CPU-seconds**, "
        f"{out['ratio_pretrain_epochs']}x pretraining epochs. Survivors {out['survivors']}; "
        f"ranking of the survivors full {out['ranking_full']}, early stopping "
        f"{out['ranking_early_stopping']}: unchanged = {out['ranking_unchanged']}.",
        "",
        "| teacher temp | full: status | full: k-NN | early stopping: status | k-NN | stopped at "
        "epoch | stop value |",
        "|---|---|---|---|---|---|---|",
    ]
    for f, e in zip(out["full"]["table"], out["early_stopping"]["table"], strict=True):
        stop_value = e["stop_value"]
        lines.append(
            f"| {f['loss.teacher_temp']} | {f['status']} | "
            f"{_fmt(f['knn_top1'], f['knn_top1_std'])} | {e['status']} | "
            f"{_fmt(e['knn_top1'], e['knn_top1_std'])} | {e['stopped_at_epoch'] or '-'} | "
            f"{'-' if stop_value is None else round(stop_value, 2)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 per combination")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--name", default="early_stopping")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="dino-bench-es-")
    os.environ["DINO_HOME"] = home
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    import ray

    from orchestrator.db import open_database
    from orchestrator.loop import run_orchestrator
    from orchestrator.schemas import GridRequest
    from orchestrator.service import create_user, hash_token
    from orchestrator.settings import OrchestratorSettings

    settings = OrchestratorSettings(database_url=f"sqlite:///{home}/dino.db")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, namespace="dino")
    db = open_database(settings.database_url)
    user = create_user(db, "bench", hash_token("bench"))
    stop = threading.Event()
    loop = threading.Thread(target=run_orchestrator, args=(stop, settings), daemon=True)
    loop.start()
    base = _base(args.images, args.epochs)
    common: dict[str, Any] = {
        "base_config": base,
        "axes": {"loss.teacher_temp": TEMPS},
        "evals": ["eval_knn"],
        "seeds": list(range(args.seeds)),
        "resources": {"num_cpus": 1},
        "reuse": False,
    }
    at_start = machine()
    try:
        full_id, full_wall = _run_grid(
            db, user, GridRequest.model_validate({"name": "full", **common}), args.timeout
        )
        es_id, es_wall = _run_grid(
            db,
            user,
            GridRequest.model_validate({"name": "asha", **common, "early_stopping": ES}),
            args.timeout,
        )
        full, es = _usage(db, full_id), _usage(db, es_id)
        full_res, es_res = _results(db, user, full_id), _results(db, user, es_id)
        full_rows, es_rows = _table(full_res), _table(es_res)
        _figures(args.name, {"full": full_res, "asha": es_res})
    finally:
        stop.set()
        loop.join(120)
        ray.shutdown()
        db.dispose()
        shutil.rmtree(home, ignore_errors=True)
    survivors = [r["loss.teacher_temp"] for r in es_rows if r["status"] != STOPPED_EARLY]
    out = {
        "benchmark": "early_stopping",
        "machine_at_start": at_start,
        "machine_at_end": machine(),
        "grid": {
            "teacher_temps": TEMPS,
            "images": args.images,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "early_stopping": ES,
            "slots": args.cpus,
        },
        "full": {**full, "wall_s": round(full_wall, 1), "table": full_rows},
        "early_stopping": {**es, "wall_s": round(es_wall, 1), "table": es_rows},
        "ratio_cpu_seconds": round(es["cpu_seconds_total"] / full["cpu_seconds_total"], 3),
        "ratio_pretrain_epochs": round(es["pretrain_epochs"] / full["pretrain_epochs"], 3),
        "survivors": survivors,
        "ranking_full": _ranking(full_rows, survivors),
        "ranking_early_stopping": _ranking(es_rows, survivors),
    }
    out["ranking_unchanged"] = out["ranking_full"] == out["ranking_early_stopping"]
    path = write_json(args.name, out)
    path.with_suffix(".md").write_text(_markdown(out))
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
