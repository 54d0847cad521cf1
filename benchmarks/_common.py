"""Shared helpers of the benchmarks: machine facts, peak-memory sampling, result files."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import torch

from dino_core.callbacks import Callback
from dino_core.runtime import cpu_flags, cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
# The CPU flags recorded with every figure: the vector and matrix units that decide fp32 and
# bf16 matmul speed (lscpu's full list is long; these are the ones the figures depend on).
MATMUL_FLAG_PREFIXES = ("avx", "fma", "amx", "f16c")


class WallClockStop(Callback):
    """A trainer callback that asks to stop (with a checkpoint) after ``seconds``: runs
    compared at equal CPU time, whatever their step cost."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def should_stop(self) -> bool:
        return time.monotonic() >= self.deadline


def machine() -> dict[str, Any]:
    """Facts that decide the figures: CPU model, cores, bf16 hardware, torch, load average."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "flags": sorted(f for f in flags if f.startswith(MATMUL_FLAG_PREFIXES)),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(info: dict[str, Any]) -> str:
    """The sentence every learning figure carries: CPU model, logical CPUs, the matmul flags
    and the load average at the start (``info`` from :func:`machine`)."""
    return (
        f"CPU {info['cpu']} ({info['logical_cpus']} logical, flags {' '.join(info['flags'])}); "
        f"load average at start {info['load_average']}"
    )


class PeakRSS:
    """Peak resident set size above the level at ``__enter__`` (bytes), sampled every 5 ms.

    Used for CPU paths, where ru_maxrss only ever grows over the whole process."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.proc = psutil.Process()
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def delta_mib(self) -> float:
        return (self.peak - self.base) / 2**20


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """``{"peak_mib": ...}`` of the block: CUDA max allocated, else sampled RSS growth."""
    out: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield out
        out["peak_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return
    with PeakRSS() as rss:
        yield out
    out["peak_mib"] = rss.delta_mib


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def write_text(name: str, suffix: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.{suffix}"
    path.write_text(text)
    return path


def matmul_gflops(
    device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10, budget_s: float = 10.0
) -> float:
    """Measured GFLOP/s of an ``n x n`` matmul in ``dtype`` (median of up to ``reps``): the
    ceiling a compute-bound training step can approach on this machine. Stops after
    ``budget_s`` of timed products once one is in (a dtype the hardware only emulates, e.g.
    bf16 on a CPU without bf16 units, takes ~1 minute per 2048^3 product)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times: list[float] = []
    for i in range(reps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        took = time.perf_counter() - t0
        if i >= 2 or took > budget_s / 4:  # two warm-up products, unless one is already slow
            times.append(took)
        if times and sum(times) >= budget_s:
            break
    return 2 * n**3 / median(times) / 1e9
