"""Images/s of the per-image (torchvision v2) and batched multi-crop pipelines.

Rounds alternate between the two pipelines so background load hits both alike; the
figure reported is the median round. Run: ``.venv/bin/python benchmarks/data_pipeline.py``
(``--threads 1`` is the fair comparison with DataLoader workers, which use one thread each).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dino_core.config import CropsConfig, DataConfig
from dino_core.data import BatchedMultiCrop, MultiCropTransform, load_dataset
from dino_core.data.base import ImageDataset


def _images(kind: str) -> ImageDataset:
    if kind == "fashion_mnist":
        try:
            return load_dataset(DataConfig(dataset="fashion_mnist", limit=4096), "train")
        except FileNotFoundError:
            pass
    size = 28 if kind == "fashion_mnist" else 32
    return load_dataset(
        DataConfig(dataset="synthetic", synthetic_size=4096, synthetic_image_size=size), "train"
    )


def bench(kind: str, crops: CropsConfig, in_chans: int, batch: int, rounds: int) -> None:
    ds = _images(kind)
    assert ds.images is not None
    per = MultiCropTransform(crops, ds.mean, ds.std, in_chans)
    bat = BatchedMultiCrop(crops, ds.mean, ds.std, in_chans)
    gen = torch.Generator().manual_seed(0)
    n_per = 64
    per_rates, bat_rates = [], []
    for r in range(rounds + 1):  # round 0 warms up
        t0 = time.perf_counter()
        for i in range(n_per):
            per(ds.images[(r * n_per + i) % len(ds)])
        t1 = time.perf_counter()
        start = (r * batch) % (len(ds) - batch)
        bat(ds.images[start : start + batch], gen)
        t2 = time.perf_counter()
        if r:
            per_rates.append(n_per / (t1 - t0))
            bat_rates.append(batch / (t2 - t1))
    p, b = statistics.median(per_rates), statistics.median(bat_rates)
    views = f"2x{crops.global_size}+{crops.local_number}x{crops.local_size}"
    print(
        f"{ds.name:>28} {views:>10} in_chans={in_chans}  per-image {p:8.0f} img/s  "
        f"batched(B={batch}) {b:8.0f} img/s  ratio {b / p:5.1f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    fm = CropsConfig(global_size=28, local_size=12, local_number=6)
    bench("fashion_mnist", fm, 1, args.batch, args.rounds)
    bench("fashion_mnist", fm, 3, args.batch, args.rounds)
    c32 = CropsConfig(global_size=32, local_size=16, local_number=6)
    bench("synthetic32", c32, 3, args.batch, args.rounds)


if __name__ == "__main__":
    main()
