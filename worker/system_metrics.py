"""Host and accelerator metrics logged next to the training metrics (``system/*``).

psutil for CPU and memory (cheap, non-blocking: ``cpu_percent(None)`` reports the load since
the previous call); torch.cuda for GPU memory and, where NVML is present, utilisation.
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
