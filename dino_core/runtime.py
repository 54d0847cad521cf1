"""Process-level setup: device, distributed rank, seeds, precision context."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from dino_core.config import ConfigError, TrainConfig


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def detect_runtime(cfg: TrainConfig) -> Runtime:
    """Use an already-initialised torch.distributed group (Ray Train, torchrun) if any."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if cfg.precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision='fp16' needs a GPU; use 'bf16' on CPU (AMX) or 'fp32'")
    if cfg.precision == "bf16" and not bf16_is_fast(device):
        warnings.warn(
            "train.precision='bf16' on a CPU without bf16 matmul units (AMX or AVX512-BF16): "
            "bf16 is emulated and slower than fp32 here; use train.precision='fp32'",
            stacklevel=2,
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Runtime(device=device, rank=rank, world_size=world, local_rank=local_rank)


@functools.cache
def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line of /proc/cpuinfo (None where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name):
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where it does not exist)."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def cpu_model() -> str:
    """The CPU's model name (``AMD EPYC``, ``Intel(R) Xeon(R) Platinum 8488C`` ...)."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matmuls beat fp32 on ``device``: CUDA GPUs with bf16 support, or CPUs
    with AMX-BF16 / AVX512-BF16. Elsewhere (e.g. AVX-512 CPUs before Cooper Lake) oneDNN
    emulates bf16 and a bf16 step is several times slower than fp32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    flags = cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch RNGs (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CPU (AMX) or GPU; fp16 on GPU; nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()
