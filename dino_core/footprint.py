"""How much memory one rank needs to train a config, known before anything is allocated.

The student network is built by :func:`dino_core.models.build_model` on PyTorch's ``meta``
device (shapes only: no weights allocated, no arithmetic), which also proves that
``model.arch`` names a model timm can build with these settings. A forward pass on ``meta``
tensors then measures what the student keeps for its backward pass per image, at the global
and at the local crop size. The estimate is meant as a lower bound, so that refusing a job
whose estimate exceeds a worker's memory is never wrong:

* state: student weights, their gradients, the optimiser's moments (AdamW 2, SGD/LARS 1) and
  the teacher's weights, all fp32 (autocast keeps parameters in fp32);
* activations: the outputs of the student's leaf modules (linear, convolution, norm,
  activation layers, each tensor once) for one rank's share of the batch, 2 global +
  ``local_number`` local crops per image, in the training precision (4 or 2 bytes); what the
  attention kernels, the loss and the teacher's gradient-free forward need on top is left
  out;
* data: a synthetic data set is generated into host memory (``N x 3 x side^2`` bytes).

Building and measuring a ViT-S/16 costs well under a second; results are cached per
architecture and crop sizes.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from dino_core.config import ConfigError, DinoConfig

FP32_BYTES = 4
PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
OPTIMIZER_STATES = {"adamw": 2, "sgd": 1, "lars": 1}  # moments kept per parameter
_PROBE_BATCH = 7  # a batch size no layer width equals: outputs with it as first dim scale
_NOT_STORED = ("Dropout", "Identity", "DropPath")  # return their input (or a copy of it)


@dataclass(frozen=True)
class Footprint:
    """Bytes one rank needs at least (see the module docstring for what is counted)."""

    parameters: int
    state_bytes: int
    activation_bytes: int
    data_bytes: int

    @property
    def device_bytes(self) -> int:
        """On the training device: state plus activations."""
        return self.state_bytes + self.activation_bytes

    @property
    def host_bytes(self) -> int:
        """On a CPU-only worker everything lives in host memory."""
        return self.device_bytes + self.data_bytes


@dataclass(frozen=True)
class _Network:
    parameters: int
    per_global_image: int  # activation elements kept per image at the global crop size
    per_local_image: int


def _stored_elements(model: Any, crop: Any) -> int:
    """Elements of the leaf-module outputs of one forward of ``crop``, per image."""
    import torch

    seen: set[int] = set()
    keep: list[Any] = []
    total = 0

    def hook(module: Any, inputs: Any, output: Any) -> None:
        nonlocal total
        if type(module).__name__.endswith(_NOT_STORED) or not isinstance(output, torch.Tensor):
            return
        if id(output) in seen or output.dim() == 0 or output.shape[0] != _PROBE_BATCH:
            return  # in place, a parameter (weight-norm), or not per image
        if any(output is i for i in inputs):
            return
        seen.add(id(output))
        keep.append(output)  # keep it referenced so that its id is not reused
        total += output.numel() // _PROBE_BATCH

    handles = [
        m.register_forward_hook(hook)
        for name, m in model.named_modules()
        if "parametrizations" not in name.split(".")
        and not any(n != "parametrizations" for n, _ in m.named_children())
    ]
    try:
        model([crop])
    finally:
        for h in handles:
            h.remove()
    return total


@functools.cache
def _network(key: str) -> _Network:
    import torch

    from dino_core.models import build_model

    spec = json.loads(key)
    cfg = DinoConfig.model_validate(spec)
    c = cfg.model.in_chans
    try:
        with torch.device("meta"):
            model = build_model(cfg)
            model.train()
            params = sum(p.numel() for p in model.parameters())
            sizes = (cfg.crops.global_size, cfg.crops.local_size)
            per = [_stored_elements(model, torch.empty(_PROBE_BATCH, c, s, s)) for s in sizes]
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(
            f"model.arch={cfg.model.arch!r} cannot be built with this config: "
            f"{type(err).__name__}: {err}"
        ) from None
    return _Network(params, per[0], per[1])


def _key(cfg: DinoConfig) -> str:
    """What decides the network and its activations: model, head and the two crop sizes."""
    crops = {"global_size": cfg.crops.global_size, "local_size": cfg.crops.local_size}
    spec = {
        "model": cfg.model.model_dump(mode="json"),
        "head": cfg.head.model_dump(mode="json"),
        "crops": crops,
    }
    return json.dumps(spec, sort_keys=True)


def footprint(cfg: DinoConfig, world_size: int = 1) -> Footprint:
    """The least memory one of ``world_size`` ranks needs to train ``cfg``; raises
    :class:`ConfigError` (naming ``model.arch``) when the network cannot be built."""
    net = _network(_key(cfg))
    states = 2 + OPTIMIZER_STATES[cfg.optim.name] + 1  # weights, grads, moments, teacher
    per_rank = math.ceil(cfg.train.batch_size / max(world_size, 1))
    per_image = 2 * net.per_global_image + cfg.crops.local_number * net.per_local_image
    data = 0
    if cfg.data.dataset == "synthetic":
        data = cfg.data.synthetic_size * 3 * cfg.data.synthetic_image_size**2
    return Footprint(
        parameters=net.parameters,
        state_bytes=net.parameters * FP32_BYTES * states,
        activation_bytes=per_rank * per_image * PRECISION_BYTES[cfg.train.precision],
        data_bytes=data,
    )
