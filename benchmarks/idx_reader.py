"""Reading IDX files: :func:`dino_core.data.idx.read_idx` against torchvision's reader.

torchvision's ``read_image_file`` opens its path with the builtin ``open``, so it reads only
uncompressed files; Debian's ``dataset-fashion-mnist`` and ``shared/data/mnist-t10k`` ship
``.gz``. The torchvision route is therefore "gunzip to a file, then read" (what its own
``MNIST`` class does after a download). Rounds alternate the variants so background load
hits all alike; the median round is reported, as ratios to ours. Also timed: both readers on
the already uncompressed file (the parsing alone). Writes ``benchmarks/results/idx_reader.json``.

    .venv/bin/python -m benchmarks.idx_reader [--file PATH.gz] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from torchvision.datasets.mnist import read_image_file  # noqa: E402

from benchmarks._common import machine, median, write_json  # noqa: E402
from dino_core.data.idx import read_idx, write_idx  # noqa: E402

DEFAULT = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def _gunzip(src: Path, dst: Path) -> None:
    with gzip.open(src, "rb") as f, dst.open("wb") as g:
        shutil.copyfileobj(f, g)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--file", type=Path, default=DEFAULT)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dino-idx-") as tmp:
        work = Path(tmp)
        src: Path = args.file
        if not src.is_file():  # no data set installed: 60000 random 28x28 images instead
            src = work / "generated-images-idx3-ubyte.gz"
            rng = np.random.default_rng(0)
            write_idx(src, rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8))
        raw = work / "raw-idx3-ubyte"
        _gunzip(src, raw)
        ours, theirs = read_idx(src), read_image_file(str(raw)).numpy()
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)

        def torchvision_from_gz() -> None:
            out = work / "extracted"
            _gunzip(src, out)
            read_image_file(str(out))

        variants: dict[str, Callable[[], object]] = {
            "ours_gz": lambda: read_idx(src),
            "torchvision_gunzip_then_read": torchvision_from_gz,
            "ours_uncompressed": lambda: read_idx(raw),
            "torchvision_uncompressed": lambda: read_image_file(str(raw)),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        start = machine()
        for _ in range(args.rounds):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    ms = {k: round(median(v) * 1000, 2) for k, v in times.items()}
    res = {
        "machine": start,
        "load_average_after": machine()["load_average"],
        "file": str(args.file if args.file.is_file() else "generated 60000x28x28 uint8"),
        "shape": list(ours.shape),
        "rounds": args.rounds,
        "median_ms": ms,
        "torchvision_gz_route_over_ours": round(
            ms["torchvision_gunzip_then_read"] / ms["ours_gz"], 2
        ),
        "torchvision_over_ours_uncompressed": round(
            ms["torchvision_uncompressed"] / ms["ours_uncompressed"], 2
        ),
    }
    path = write_json("idx_reader", res)
    print(res)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
