"""Host and accelerator metrics logged next to the training metrics (``system/*``).

psutil for CPU and memory (cheap, non-blocking: ``cpu_percent(None)`` reports the load since
the previous call); torch.cuda for GPU memory and, where NVML is present, utilisation. The
tracker logs them at the training step, through the job's :class:`TrackingSession`.

Why not MLflow's own system-metrics logging (``mlflow.start_run(..., log_system_metrics=True)``),
checked with MLflow 3.17.2 against a real server by ``benchmarks/mlflow_system_metrics.py``
(``benchmarks/results/mlflow_system_metrics.json``):

- One run per job holds: resuming the run continues its sample counter (attempt 1 logged
  steps 0-1, attempt 2 steps 2-3, same run; the experiment held 1 run).
- A tracking outage ends it for the rest of the attempt: its sampler thread reads the run
  every interval and exits at the first failed call. After a 3 s server outage the thread
  was gone and 0 of the ~12 expected samples arrived in the 6 s after the server was back.
  Ours go through the session, which buffers and retries (tests/worker/test_tracking_outage.py).
- Its step is a sample counter (one per 10 s by default), not the training step, so its
  values cannot be read beside the loss of a step; ours are logged at the global step.
- Its documented switch is the fluent ``mlflow.start_run`` (a process-wide active run that
  also sets the run's end status); the worker opens the run by id on the session's writer
  thread and sets the status itself (worker/mlflow_run.py).

MLflow samples disk and network I/O and NVIDIA power as well; those are not logged here.
"""

from __future__ import annotations

import contextlib

import psutil
import torch


class SystemSampler:
    """Sample process and host resource use; each call is a few tens of microseconds."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first reading is always 0
        psutil.cpu_percent(None)

    def sample(self) -> dict[str, float]:
        vm = psutil.virtual_memory()
        out = {
            "system/cpu_percent": float(psutil.cpu_percent(None)),
            "system/process_cpu_percent": float(self._proc.cpu_percent(None)),
            "system/memory_used_percent": float(vm.percent),
            "system/process_rss_mb": self._proc.memory_info().rss / 2**20,
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            dev = torch.cuda.current_device()
            out["system/gpu_memory_allocated_mb"] = torch.cuda.memory_allocated(dev) / 2**20
            out["system/gpu_memory_reserved_mb"] = torch.cuda.memory_reserved(dev) / 2**20
            # no NVML bindings or no driver query: utilisation is left out
            with contextlib.suppress(ModuleNotFoundError, RuntimeError):
                out["system/gpu_utilization_percent"] = float(torch.cuda.utilization(dev))
        return out
