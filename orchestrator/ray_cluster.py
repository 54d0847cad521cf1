"""Connecting to Ray (a cluster at ``RAY_ADDRESS``, else a local one) and reading capacity."""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray._private import state as ray_state  # DeveloperAPI: per-node free/total resources
from ray.exceptions import RayActorError

from orchestrator.capacity import Bundle, Capacity, add_into
from orchestrator.home_lock import lock_local_ray
from orchestrator.local_ray import LocalRay
from orchestrator.settings import OrchestratorSettings
from worker.deployment import dino_home
from worker.env import worker_env

log = logging.getLogger(__name__)


def reserve_local_ray(settings: OrchestratorSettings) -> LocalRay | None:
    """``DINO_HOME``'s lock (:mod:`orchestrator.home_lock`) when this process is to start its
    own local Ray (no address, not connected yet), taken before anything else the process
    does; another live orchestrator with its own local Ray there: :class:`LocalRayLockedError`.
    """
    if ray.is_initialized() or settings.resolved_ray_address():
        return None
    return LocalRay(lock_local_ray(dino_home()))


def connect(settings: OrchestratorSettings, local: LocalRay | None) -> None:
    """Connect this process to Ray.

    With an address: join that cluster. Without: start the local Ray that ``local``
    (:func:`reserve_local_ray`) holds the lock for, with ``settings.num_cpus`` (no dashboard,
    worker logs not forwarded). Already connected: reuse the connection.
    """
    if ray.is_initialized():
        return
    address = settings.resolved_ray_address()
    common: dict[str, Any] = {
        "namespace": settings.namespace,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        # every actor and Ray Train worker of this job, on any node: telemetry off, short
        # MLflow client retries (worker.env), set before they import MLflow
        "runtime_env": {"env_vars": worker_env()},
    }
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, **common)
        return
    if local is None:
        raise ValueError("a local Ray needs DINO_HOME's lock: call reserve_local_ray first")
    log.info("starting a local Ray (num_cpus=%s)", settings.num_cpus or "all")
    with local.starting():
        ray.init(
            num_cpus=settings.num_cpus,
            num_gpus=settings.num_gpus,
            include_dashboard=False,
            **common,
        )


def node_loss_cause(err: BaseException, node_id: str | None) -> str | None:
    """Why a job actor died when its node, not the job, is to blame; None otherwise.

    A preemption (Ray's ``RayActorError.preempted``: the node was drained for it) or a node
    that Ray now lists as dead (``node_id``: where the actor ran). A dead actor on a live
    node (a killed process, the job's own out-of-memory) is the job's failure.
    """
    if isinstance(err, RayActorError) and err.preempted:
        return "the node was preempted"
    if not node_id:
        return None
    for node in ray.nodes():
        if node.get("NodeID") == node_id and not node.get("Alive"):
            why = str(node.get("DeathReasonMessage") or node.get("DeathReason") or "")
            return why or "Ray lists the node as dead"
    return None


def _alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def capacity_snapshot(held: Bundle, released: dict[str, Bundle] | None = None) -> Capacity:
    """Free resources per live node, node totals, and a guard = cluster total - ``held``.

    ``released`` (node id -> resources of actors this orchestrator killed a moment ago) is
    added to those nodes' free resources, capped at their totals: Ray's view lags a kill by
    a report period, and the next job should not wait for it.
    """
    totals = ray_state.total_resources_per_node()
    free = ray_state.available_resources_per_node()
    guard: Bundle = {}
    for node_total in totals.values():
        add_into(guard, node_total)
    add_into(guard, held, -1.0)
    nodes_free = []
    for node_id, total in totals.items():
        node = dict(free.get(node_id, {}))
        add_into(node, (released or {}).get(node_id, {}))
        nodes_free.append({k: min(v, float(total.get(k, 0.0))) for k, v in node.items()})
    return Capacity(free=nodes_free, totals=[dict(t) for t in totals.values()], guard=guard)


def cluster_report() -> dict[str, Any]:
    """What the orchestrator's heartbeat stores for ``cluster_info`` (JSON-ready)."""
    nodes = [
        {
            "node_id": n.get("NodeID"),
            "address": n.get("NodeManagerAddress"),
            "alive": bool(n.get("Alive")),
            "resources": {k: float(v) for k, v in (n.get("Resources") or {}).items()},
        }
        for n in _alive_nodes()
    ]
    return {
        "total": {k: float(v) for k, v in ray.cluster_resources().items()},
        "available": {k: float(v) for k, v in ray.available_resources().items()},
        "nodes": nodes,
        "address": ray.get_runtime_context().gcs_address,
    }
