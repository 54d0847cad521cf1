"""Where in a ViT the class goes: weighted k-NN of each block's tokens, trained vs random init.

``python -m benchmarks.vit_layer_probe --run-dir /tmp/dino-<name> [--steps 125 625]
[--train-limit N] [--test-limit N] [--name vit_layer_probe]``

For the run's random-init backbone and for each checkpoint of ``--steps`` (default: the
first and the last), scores with the paper's weighted k-NN (k=20, T=0.07, as the learning
benchmark) on the run's own memory and query splits:

- ``patch_embed``: the patch embeddings before any block, concatenated in grid order (what a
  per-patch linear map keeps, position included);
- for every block ``b``: its normalised CLS token (``cls_b``; the last block's is the feature
  the learning benchmark scores) and the mean of its patch tokens (``patchmean_b``).

So a k-NN that falls over training can be traced to the block that drops the class, and to
whether the CLS token or the tokens themselves lose it. Writes
``results/<name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks._common import machine, machine_line, write_json, write_text
from benchmarks.knn_vs_time import eval_data
from dino_core.checkpoint import checkpoint_step, list_checkpoints
from dino_core.config import load_config
from dino_core.data import ImageDataset, eval_batches
from dino_core.eval.baselines import baseline_models
from dino_core.eval.knn import PAPER_K, PAPER_TEMPERATURE, knn_classify
from dino_core.eval.suite import EvalData, Transform
from dino_core.models.loading import load_backbone


@torch.no_grad()
def block_features(
    model: nn.Module, dataset: ImageDataset, transform: Transform
) -> dict[str, torch.Tensor]:
    """``{feature name: [N, D]}`` (L2-normalised) and ``"labels"`` for every image."""
    vit: Any = model
    if not hasattr(vit, "forward_intermediates") or not hasattr(vit, "blocks"):
        raise SystemExit(f"the layer probe needs a ViT backbone, got {type(model).__name__}")
    vit.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for images, labels in eval_batches(dataset, transform, 256):
        feats = {"patch_embed": vit.patch_embed(images).flatten(1)}
        layers = vit.forward_intermediates(
            images,
            indices=len(vit.blocks),
            return_prefix_tokens=True,
            norm=True,
            output_fmt="NLC",
            intermediates_only=True,
        )
        for b, (patches, prefix) in enumerate(layers):
            feats[f"cls_{b}"] = prefix[:, 0]
            feats[f"patchmean_{b}"] = patches.mean(dim=1)
        for key, value in feats.items():
            parts.setdefault(key, []).append(F.normalize(value.float(), dim=1))
        parts.setdefault("labels", []).append(torch.as_tensor(labels).long())
    return {key: torch.cat(chunks) for key, chunks in parts.items()}


def probe(model: nn.Module, data: EvalData) -> dict[str, float]:
    """k-NN top-1 (%) of every feature of :func:`block_features`."""
    if data.train is None:
        raise SystemExit("the layer probe needs the run's train split as the k-NN memory")
    train = block_features(model, data.train, data.transform)
    test = block_features(model, data.test, data.transform)
    out: dict[str, float] = {}
    for key in train:
        if key == "labels":
            continue
        score = knn_classify(
            train[key],
            train["labels"],
            test[key],
            test["labels"],
            ks=[PAPER_K],
            temperature=PAPER_TEMPERATURE,
            normalize=False,
        )[PAPER_K]
        out[key] = round(float(score.top1), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", required=True, help="a run directory with config.yaml")
    ap.add_argument("--steps", type=int, nargs="*", help="checkpoint steps (default: first, last)")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--name", default="vit_layer_probe", help="results/<name>.{json,md}")
    args = ap.parse_args()
    info = machine()
    run_dir = Path(args.run_dir)
    cfg = load_config(run_dir / "config.yaml")
    torch.set_num_threads(cfg.train.threads or torch.get_num_threads())
    paths = {checkpoint_step(p): p for p in list_checkpoints(str(run_dir))}
    if not paths:
        raise SystemExit(f"{run_dir}: no checkpoints to probe")
    wanted = args.steps or sorted({min(paths), max(paths)})
    missing = [s for s in wanted if s not in paths]
    if missing:
        raise SystemExit(f"--steps {missing}: no such checkpoint in {run_dir} ({sorted(paths)})")
    data = eval_data(cfg, args.train_limit, args.test_limit)
    models = {"random init": baseline_models(cfg)["random_init"]}
    models.update({f"step {s}": load_backbone(paths[s])[0] for s in wanted})
    rows = {}
    for name, model in models.items():
        rows[name] = probe(model, data)
        print(name, rows[name], flush=True)
    res = {"machine": info, "load_after": list(os.getloadavg()), "run_dir": run_dir.name,
           "config": cfg.flat(), "knn_top1": rows}  # fmt: skip
    write_json(args.name, res)
    keys = list(next(iter(rows.values())))
    table = "\n".join(
        f"| {key} | " + " | ".join(f"{rows[n][key]:.2f}" for n in rows) + " |" for key in keys
    )
    md = (
        f"# k-NN of each ViT block, {cfg.data.dataset} {cfg.data.split} -> "
        f"{cfg.data.eval_split} (k={PAPER_K}, T={PAPER_TEMPERATURE})\n\n"
        f"Run `{run_dir.name}`. {machine_line(info)}.\n\n"
        f"| feature | {' | '.join(rows)} |\n|---|{'---|' * len(rows)}\n{table}\n"
    )
    write_text(args.name, "md", md)
    print(md)


if __name__ == "__main__":
    main()
