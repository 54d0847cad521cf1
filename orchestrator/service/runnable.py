"""What no worker could ever run, found at submit: the checks of one pretraining config.

* data (with a :class:`PathPolicy`): ``image_folder`` needs ``data.root``; a root must be an
  existing directory inside the dataset roots, symlinks resolved (the worker resolves and
  checks it again where it opens the data: :mod:`dino_core.data.roots`);
* the resources (given the nodes of a cluster that cannot grow): some node must hold each
  worker (``resources.num_cpus``: ``needs 64 CPUs; the largest node has 2 CPUs``);
* the network (with a :class:`MemoryPolicy`): ``model.arch`` must build (timm, on PyTorch's
  meta device) and its memory estimate (:mod:`dino_core.footprint`) must fit one worker of
  the requested resources: one accelerator when the job asks for GPUs, else the largest
  node's memory.

Each error names the request path of the config field to change; ``where`` maps a dotted
config field (``train.batch_size``) to that path (``config.train.batch_size``,
``axes.train.batch_size``...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dino_core.config import ConfigError, DinoConfig
from orchestrator.capacity import Bundle, shortfall
from orchestrator.errors import FieldError
from orchestrator.paths import outside_roots
from worker.contracts import Resources

GIB = float(2**30)
Where = Callable[[str], str]


@dataclass(frozen=True)
class PathPolicy:
    """Where a request's paths may point: ``data.root`` into one of ``dataset_roots``
    (resolved), ``source_checkpoint`` under ``storage_root`` (the job storage)."""

    dataset_roots: tuple[Path, ...]
    storage_root: str


@dataclass(frozen=True)
class MemoryPolicy:
    """The memory one worker of a job can have: ``gpu_bytes`` on one accelerator (jobs with
    ``num_gpus > 0`` train there) and ``host_bytes`` on a CPU-only worker (None: unknown,
    not checked)."""

    gpu_bytes: float
    host_bytes: float | None


def largest_node_memory(nodes: Sequence[Mapping[str, Any]]) -> float | None:
    """Bytes of the largest node in a cluster report (Ray's ``memory`` plus its object store,
    i.e. about the node's RAM); None when no node is reported."""
    sizes = [
        float(n.get("resources", {}).get("memory", 0.0))
        + float(n.get("resources", {}).get("object_store_memory", 0.0))
        for n in nodes
    ]
    return max(sizes) if sizes and max(sizes) > 0 else None


def fixed_cluster_nodes(
    nodes: Sequence[Mapping[str, Any]], fixed_size: bool
) -> list[Bundle] | None:
    """Each node's total resources in a cluster report when the cluster cannot grow (no
    autoscaling, per its orchestrator), else None: then no job is refused for its size."""
    if not fixed_size or not nodes:
        return None
    return [{k: float(v) for k, v in (n.get("resources") or {}).items()} for n in nodes]


def capacity_errors(
    resources: Mapping[str, Resources | None], nodes: Sequence[Bundle] | None
) -> list[FieldError]:
    """Each of ``resources`` (request field -> request) no node of ``nodes`` could hold."""
    if nodes is None:
        return []
    errors = []
    for prefix, res in resources.items():
        why = shortfall(res, list(nodes)) if res is not None else None
        if why is not None:
            message = f"{why.message}, and this cluster does not grow: ask for less"
            errors.append(
                FieldError(field=f"{prefix}.{why.field}", message=message, type="too_large")
            )
    return errors


def data_errors(cfg: DinoConfig, paths: PathPolicy, where: Where) -> list[FieldError]:
    """``data.root`` given where it is needed, existing and inside the dataset roots."""
    field = where("data.root")
    if cfg.data.root is None:
        if cfg.data.dataset != "image_folder":
            return []
        roots = ", ".join(str(r) for r in paths.dataset_roots) or "(none configured)"
        message = (
            "data.dataset='image_folder' needs data.root: a directory of images inside one "
            f"of the dataset roots ({roots})"
        )
        return [FieldError(field=field, message=message, type="missing")]
    error = outside_roots(cfg.data.root, paths.dataset_roots, field, "data.root")
    return [error] if error else []


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def memory_errors(
    cfg: DinoConfig, resources: Resources, memory: MemoryPolicy, where: Where
) -> list[FieldError]:
    """The network builds and one worker's share of the training fits its memory."""
    from dino_core.footprint import footprint  # torch and timm: only when a job is checked

    try:
        fp = footprint(cfg, resources.num_workers)
    except ConfigError as err:
        return [FieldError(field=where("model.arch"), message=str(err), type="architecture")]
    if resources.num_gpus > 0:
        need, have, place = fp.device_bytes, memory.gpu_bytes, "one accelerator"
    elif memory.host_bytes is not None:
        need, have, place = fp.host_bytes, memory.host_bytes, "the largest node of the cluster"
    else:
        return []
    if need <= have:
        return []
    parts = {
        "train.batch_size": fp.activation_bytes,
        "model.arch": fp.state_bytes,
        "data.synthetic_size": fp.data_bytes if resources.num_gpus == 0 else 0,
    }
    culprit = max(parts, key=lambda k: parts[k])
    per_worker = -(-cfg.train.batch_size // resources.num_workers)
    message = (
        f"training needs at least {_gib(need)} per worker but {place} has {_gib(have)}: "
        f"{fp.parameters / 1e6:.1f} M parameters take {_gib(fp.state_bytes)} (weights, "
        f"gradients, {cfg.optim.name} state, teacher), the activations of {per_worker} "
        f"images ({2 + cfg.crops.local_number} crops each) {_gib(fp.activation_bytes)}"
        + (f", the synthetic images {_gib(fp.data_bytes)}" if parts["data.synthetic_size"] else "")
        + "; lower train.batch_size, the crop sizes or crops.local_number, use a smaller "
        "model, or spread the batch over more resources.num_workers"
    )
    return [FieldError(field=where(culprit), message=message, type="does_not_fit")]


def runnable_errors(
    cfg: DinoConfig,
    resources: Resources,
    paths: PathPolicy | None,
    memory: MemoryPolicy | None,
    where: Where,
    found: Sequence[FieldError] = (),
) -> list[FieldError]:
    """Every reason a worker could not run pretraining ``cfg`` on ``resources``. The network
    is built (a fraction of a second, cached per architecture) only when neither this
    config's data nor the rest of the request (``found``) has an error."""
    errors = data_errors(cfg, paths, where) if paths is not None else []
    if memory is not None and not errors and not found:
        errors += memory_errors(cfg, resources, memory, where)
    return errors
