"""The ViT self-attention kernel, chosen per device, precision and shape (``train.attention``).

Every kernel computes ``softmax(scale * q k^T) v`` on timm's ``[B, heads, N, head_dim]``
tensors; they differ in speed and rounding only:

- ``sdpa``: ``F.scaled_dot_product_attention``, PyTorch's choice of backend (flash attention on
  CPU; flash / memory-efficient / cuDNN on CUDA). timm's default.
- ``math``: the explicit matmul-softmax-matmul (the official DINO code's attention), in the
  dtype autocast gives the matmuls (bf16 under bf16 autocast).
- ``sdpa_fp32`` / ``math_fp32``: the same on fp32 copies of q, k, v inside bf16/fp16 autocast
  (identical to the plain kernels in an fp32 run).
- ``auto``: the first time a shape is seen, each candidate runs forward (and backward where
  gradients flow) on random tensors of that shape and dtype, interleaved, ``MEASURE_ROUNDS``
  times; the fastest (best of its rounds: other processes only ever add time) wins unless it
  beats ``sdpa`` by less than ``MARGIN``. The choice
  is kept for the process (:func:`plan_state`) and in checkpoints, so a resumed run keeps its
  kernels. Why measure rather than tabulate: on an AMD EPYC (Zen 4, AVX512-BF16) the CPU flash
  kernel is the fastest fp32 kernel but the slowest bf16 one (``benchmarks/official_step.py``
  records the measured table), and these machines' CPUs differ from one to the next.

:func:`use_attention` swaps timm's ``Attention`` modules for :class:`PlannedAttention`, which
holds the same sub-modules under the same names: state dicts, checkpoints and the attention
maps of :mod:`dino_core.eval.attention` are unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention

from dino_core.config import AttentionChoice, DinoConfig
from dino_core.runtime import autocast, cpu_model

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, float], torch.Tensor]
MEASURE_ROUNDS = 5  # interleaved timings per candidate, after one warm-up call each
MARGIN = 0.05  # a candidate must beat sdpa by 5 % to replace it (timing noise on 2 cores)

# key -> kernel name, for every shape decided in this process (measured or restored)
_PLAN: dict[str, str] = {}
# key -> {kernel: best milliseconds}, the measurements behind the auto choices
_TIMINGS: dict[str, dict[str, float]] = {}
# (device type, shape, dtype, grad) -> kernel: the same choices as compiled graphs read them
_BY_SHAPE: dict[tuple[str, tuple[int, ...], torch.dtype, bool], str] = {}


def _sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, p: float
) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=scale)


def _math(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, p: float
) -> torch.Tensor:
    attn = (q * scale) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    if p > 0:
        attn = F.dropout(attn, p)
    return attn @ v


def _in_fp32(kernel: Kernel) -> Kernel:
    def run(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, p: float
    ) -> torch.Tensor:
        if q.dtype == torch.float32:
            return kernel(q, k, v, scale, p)
        with torch.autocast(q.device.type, enabled=False):
            return kernel(q.float(), k.float(), v.float(), scale, p).to(q.dtype)

    return run


KERNELS: dict[str, Kernel] = {
    "sdpa": _sdpa,
    "math": _math,
    "sdpa_fp32": _in_fp32(_sdpa),
    "math_fp32": _in_fp32(_math),
}


def candidates(dtype: torch.dtype) -> list[str]:
    """The kernels worth timing for ``dtype`` (the fp32 copies are the plain kernels in fp32)."""
    if dtype == torch.float32:
        return ["sdpa", "math"]
    return list(KERNELS)


def _device_id(device: torch.device) -> str:
    """What decides a kernel's speed besides the shape: the chip, torch, the thread count."""
    if device.type == "cuda":
        chip = torch.cuda.get_device_name(device)
    else:
        chip = f"{cpu_model()} x{torch.get_num_threads()}"
    return f"{device.type}:{chip}:torch {torch.__version__}"


def plan_key(q: torch.Tensor, grad: bool) -> str:
    shape = "x".join(str(s) for s in q.shape)
    dtype = str(q.dtype).removeprefix("torch.")
    return f"{_device_id(q.device)}|{dtype}|{shape}|{'fwd+bwd' if grad else 'fwd'}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(kernel: Kernel, qkv: list[torch.Tensor], grad: bool, scale: float) -> float:
    _sync(qkv[0].device)
    t0 = time.perf_counter()
    if grad:
        leaves = [t.detach().requires_grad_(True) for t in qkv]
        out = kernel(leaves[0], leaves[1], leaves[2], scale, 0.0)
        out.backward(torch.ones_like(out))
    else:
        kernel(qkv[0], qkv[1], qkv[2], scale, 0.0)
    _sync(qkv[0].device)
    return time.perf_counter() - t0


@torch.compiler.disable
def measure(q: torch.Tensor, grad: bool, scale: float) -> dict[str, float]:
    """Best-of-rounds milliseconds of each candidate on random tensors shaped like ``q`` (the
    global RNG is not touched: a run's random stream does not depend on whether it measured)."""
    gen = torch.Generator(device=q.device).manual_seed(0)
    qkv = [torch.randn(q.shape, generator=gen, device=q.device, dtype=q.dtype) for _ in range(3)]
    names = candidates(q.dtype)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.set_grad_enabled(grad):
        for n in names:  # warm-up: allocator, oneDNN / cuBLAS primitive creation
            _time_once(KERNELS[n], qkv, grad, scale)
        for _ in range(MEASURE_ROUNDS):
            for n in names:
                times[n].append(_time_once(KERNELS[n], qkv, grad, scale))
    return {n: 1e3 * min(ts) for n, ts in times.items()}


def choose(timings: dict[str, float]) -> str:
    """The fastest kernel, unless it beats ``sdpa`` by less than ``MARGIN``."""
    best = min(timings, key=lambda n: timings[n])
    if timings[best] > (1.0 - MARGIN) * timings["sdpa"]:
        return "sdpa"
    return best


def kernel_for(q: torch.Tensor, grad: bool, scale: float) -> str:
    """The auto choice for ``q``'s shape: planned before, or measured now. A graph being
    compiled reads what eager calls decided (:func:`plan_attention`), else takes ``sdpa``."""
    shape_key = (q.device.type, tuple(q.shape), q.dtype, grad)
    if q.device.type == "meta":  # shapes only (the submit-time footprint): nothing to time
        return "sdpa"
    if torch.compiler.is_compiling():
        return _BY_SHAPE.get(shape_key, "sdpa")
    key = plan_key(q, grad)
    name = _PLAN.get(key)
    if name is None:
        _TIMINGS[key] = measure(q, grad, scale)
        name = _PLAN[key] = choose(_TIMINGS[key])
    _BY_SHAPE[shape_key] = name
    return name


def plan_attention(model: nn.Module, cfg: DinoConfig, device: torch.device, world: int) -> None:
    """Decide ``auto``'s kernels for ``cfg``'s crops before ``model`` is compiled: one eager
    forward of the student's crops (gradients on) and one of the teacher's (off), in eval mode
    on zeros: no randomness drawn, no weight or statistic changed, nothing backpropagated."""
    if cfg.train.attention != "auto" or not cfg.model.is_vit:
        return
    c, b = cfg.crops, cfg.train.batch_size // world
    crops = [torch.zeros(b, cfg.model.in_chans, c.global_size, c.global_size, device=device)] * 2
    local = torch.zeros(b, cfg.model.in_chans, c.local_size, c.local_size, device=device)
    crops += [local] * c.local_number
    was_training = model.training
    model.eval()
    try:
        with autocast(cfg.train.precision, device):
            model(crops)
            with torch.no_grad():
                model(crops[:2])
    finally:
        model.train(was_training)


def plan_state() -> dict[str, str]:
    """Every auto choice made or restored in this process (for checkpoints)."""
    return dict(_PLAN)


def load_plan_state(state: dict[str, str]) -> None:
    """Adopt a checkpoint's choices: keys name the device, so other machines' entries are
    never looked up here, and this machine's keep their original kernels on resume."""
    _PLAN.update({str(k): str(v) for k, v in state.items() if v in KERNELS})


def measured_timings() -> dict[str, dict[str, float]]:
    """The measurements behind this process's auto choices (benchmarks report them)."""
    return {k: dict(v) for k, v in _TIMINGS.items()}


class PlannedAttention(nn.Module):
    """timm's ViT self-attention with the kernel named by ``choice`` (an ``AttentionChoice``).
    Built from a timm ``Attention``, whose sub-modules it takes over under the same names."""

    def __init__(self, attn: Attention, choice: AttentionChoice) -> None:
        super().__init__()
        self.num_heads = attn.num_heads
        self.head_dim = attn.head_dim
        self.attn_dim = attn.attn_dim
        self.scale = float(attn.scale)
        self.qkv = attn.qkv
        self.q_norm = attn.q_norm
        self.k_norm = attn.k_norm
        self.attn_drop = attn.attn_drop
        self.norm = attn.norm
        self.gate = attn.gate
        self.proj = attn.proj
        self.proj_drop = attn.proj_drop
        self.choice = choice

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        b, n, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        p = self.attn_drop.p if self.training else 0.0
        if attn_mask is not None or is_causal:  # not used by DINO's ViTs: timm's own path
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=p, is_causal=is_causal, scale=self.scale
            )
        else:
            name: str = self.choice
            if name == "auto":
                name = kernel_for(q, torch.is_grad_enabled() and q.requires_grad, self.scale)
            x = KERNELS[name](q, k, v, self.scale, p)
        x = x.transpose(1, 2).reshape(b, n, self.attn_dim)
        x = self.norm(x)
        if gate is not None:
            x = x * gate
        return cast(torch.Tensor, self.proj_drop(self.proj(x)))


def use_attention(model: nn.Module, choice: AttentionChoice) -> int:
    """Give every timm ``Attention`` of ``model`` (timm's standard class exactly; variants with
    their own forward are left alone) the kernel ``choice``; returns how many attention modules
    now use it (0 for a ConvNet)."""
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is Attention or isinstance(child, PlannedAttention)
    ]
    for parent, name, child in found:
        if isinstance(child, PlannedAttention):
            child.choice = choice
        else:
            setattr(parent, name, PlannedAttention(child, choice))
    return len(found)
