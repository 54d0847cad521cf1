"""What the queue asks of Ray's autoscaler (issue #18 item 4).

The scheduler claims only jobs that fit the nodes there are, so a queued job that needs a node
type the cluster does not have yet creates no actor, and Ray's autoscaler would never see it.
On a cluster that can grow, each pass therefore states the bundles it wants placed at once —
those of the running attempts, of the kept actors and of the ready jobs that could not be
claimed — with ``ray.autoscaler.sdk.request_resources``. The request replaces the previous one
(it is not additive) and the autoscaler sizes the cluster so that all of them fit its total;
when the queue drains the request shrinks to what runs, so idle nodes go after their idle
timeout. The call is made only when the wanted bundles change.
"""

from __future__ import annotations

import logging

from orchestrator.capacity import Bundle, bundle_of
from worker.contracts import Resources

log = logging.getLogger(__name__)


def bundles_of(res: Resources) -> list[Bundle]:
    """The bundles a job's attempt places: one per worker (none for an empty bundle)."""
    one = bundle_of(res)
    return [dict(one) for _ in range(res.num_workers)] if one else []


def _key(bundles: list[Bundle]) -> list[tuple[tuple[str, float], ...]]:
    return sorted(tuple(sorted(b.items())) for b in bundles)


class ScaleRequests:
    """The standing resource request of one scheduler (no-op on a cluster of fixed size)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last: list[Bundle] | None = None

    def update(self, bundles: list[Bundle]) -> None:
        if not self.enabled or (self.last is not None and _key(bundles) == _key(self.last)):
            return
        from ray.autoscaler.sdk import request_resources

        try:
            request_resources(bundles=[dict(b) for b in bundles])
        except Exception as err:  # the request is advisory: scheduling goes on without it
            log.warning("could not send the autoscaler's resource request: %s", err)
            return
        self.last = [dict(b) for b in bundles]
