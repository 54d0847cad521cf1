"""Does a job fit the Ray cluster now, and could it ever? (Claim only what can be placed.)

A job asks for ``num_workers`` bundles of {CPU: num_cpus, GPU: num_gpus, **custom}. It fits
when the nodes' free resources hold that many bundles (each bundle on one node) and the
cluster-wide guard (total minus what this orchestrator's running jobs hold, so a claim made a
moment ago counts before Ray reports it) covers the sum. A job no node could ever hold gets
its reason from :func:`shortfall` (``needs 64 CPUs; the largest node has 2 CPUs``), shown on
the waiting job and, on a cluster of fixed size, returned at submit as a 422.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.contracts import Resources

Bundle = dict[str, float]
_EPS = 1e-9


def bundle_of(res: Resources) -> Bundle:
    """Resources of one worker of the job (zero entries dropped)."""
    out = {"CPU": res.num_cpus, "GPU": res.num_gpus, **res.custom}
    return {k: float(v) for k, v in out.items() if v > 0}


def demand_of(res: Resources) -> Bundle:
    """Everything the job holds while it runs: ``num_workers`` bundles."""
    return {k: v * res.num_workers for k, v in bundle_of(res).items()}


def _bundles_on(node: Mapping[str, float], bundle: Bundle) -> int:
    if not bundle:
        return 1 << 30
    return min(math.floor(node.get(k, 0.0) / v + _EPS) for k, v in bundle.items())


def _holds(nodes: list[Bundle], bundle: Bundle, count: int) -> bool:
    return sum(_bundles_on(n, bundle) for n in nodes) >= count


# the Resources field of each resource Ray names (any other is Resources.custom.<name>)
_FIELDS = {"CPU": "num_cpus", "GPU": "num_gpus"}


@dataclass(frozen=True)
class Shortfall:
    """Why a job can never run on these nodes: the ``Resources`` field at fault and why."""

    field: str  # num_cpus | num_gpus | custom.<name> | num_workers
    message: str


def _amount(value: float, kind: str) -> str:
    if kind in _FIELDS:
        return f"{value:g} {kind}{'' if value == 1 else 's'}"
    return f"{value:g} of resource {kind!r}"


def shortfall(res: Resources, nodes: list[Bundle]) -> Shortfall | None:
    """None when ``nodes`` (each node's total resources), once idle, could run the job."""
    bundle = bundle_of(res)
    if _holds(nodes, bundle, res.num_workers):
        return None
    per = " per worker" if res.num_workers > 1 else ""
    for kind, need in sorted(bundle.items()):
        largest = max((n.get(kind, 0.0) for n in nodes), default=0.0)
        if largest + _EPS < need:
            return Shortfall(
                _FIELDS.get(kind, f"custom.{kind}"),
                f"needs {_amount(need, kind)}{per}; the largest node has {_amount(largest, kind)}",
            )
    each = " + ".join(_amount(v, k) for k, v in sorted(bundle.items()))
    room = sum(_bundles_on(n, bundle) for n in nodes)
    return Shortfall(
        "num_workers",
        f"needs {res.num_workers} workers of {each}; the nodes can hold {room} at most",
    )


def add_into(total: Bundle, extra: Mapping[str, float], sign: float = 1.0) -> None:
    for k, v in extra.items():
        total[k] = total.get(k, 0.0) + sign * v


@dataclass
class Capacity:
    """A snapshot of free and total resources per node, consumed as jobs are claimed."""

    free: list[Bundle]
    totals: list[Bundle]
    guard: Bundle = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)

    def never_fits(self, res: Resources) -> Shortfall | None:
        """Why the cluster as it is now could not run the job even when idle (else None)."""
        return shortfall(res, self.totals)

    def fits_now(self, res: Resources) -> bool:
        b = bundle_of(res)
        if any(k in self.blocked for k in b):
            return False
        need = demand_of(res)
        if any(self.guard.get(k, 0.0) + _EPS < v for k, v in need.items()):
            return False
        return _holds(self.free, b, res.num_workers)

    def take(self, res: Resources) -> None:
        """Account for a claimed job: its bundles leave the first nodes that hold them."""
        b = bundle_of(res)
        left = res.num_workers
        for node in self.free:
            while left and _bundles_on(node, b) > 0:
                add_into(node, b, -1.0)
                left -= 1
        add_into(self.guard, demand_of(res), -1.0)

    def hold_back(self, res: Resources) -> None:
        """A higher-priority job waits for resources the cluster has: keep lower-priority
        jobs off those resource kinds so it is not starved (strict priority)."""
        self.blocked.update(bundle_of(res))
