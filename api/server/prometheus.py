"""``GET /metrics``: the queue and cluster numbers for Prometheus, through ``prometheus_client``.

A custom collector turns one snapshot of :class:`QueueStats` and :class:`ClusterInfo` (read
from the database per scrape, so every API replica reports the same) into metric families;
the exposition format follows the scraper's ``Accept`` header: OpenMetrics 1.0 when it asks
for ``application/openmetrics-text``, else the Prometheus text format 0.0.4.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from orchestrator.schemas import ClusterInfo, QueueStats

TEXT_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
OPENMETRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _labelled(name: str, help_text: str, label: str, values: Mapping[str, float]) -> Metric:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class StatsCollector(Collector):
    """The metric families of one stats snapshot."""

    def __init__(self, stats: QueueStats, cluster: ClusterInfo) -> None:
        self.stats = stats
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        s, c = self.stats, self.cluster
        yield _gauge(
            "dino_queue_length",
            "QUEUED jobs that may start now (dependencies met, no back-off).",
            s.queue_length,
        )
        yield _gauge(
            "dino_jobs_waiting_dependencies",
            "QUEUED evaluation jobs whose pretraining job has not succeeded yet.",
            s.waiting_dependencies,
        )
        yield _gauge(
            "dino_jobs_backing_off",
            "QUEUED retries still inside their back-off delay.",
            s.backing_off,
        )
        by_state = {k: float(v) for k, v in s.jobs_by_state.items()}
        yield _labelled("dino_jobs", "Jobs by state.", "state", by_state)
        lat = s.scheduling_latency
        yield HistogramMetricFamily(
            "dino_scheduling_latency_seconds",
            "Seconds from QUEUED to claimed by an orchestrator, over the most recent attempts.",
            buckets=[(floatToGoString(float(le)), n) for le, n in lat.buckets.items()],
            sum_value=lat.sum_s,
        )
        yield _gauge(
            "dino_orchestrators_alive",
            "Orchestrator processes with a fresh heartbeat.",
            len(c.orchestrators),
        )
        yield _labelled(
            "dino_cluster_resources_total",
            "Ray cluster resources (as last reported by an orchestrator heartbeat).",
            "resource",
            c.resources_total,
        )
        yield _labelled(
            "dino_cluster_resources_available",
            "Free Ray cluster resources (as last reported by an orchestrator heartbeat).",
            "resource",
            c.resources_available,
        )


def render(stats: QueueStats, cluster: ClusterInfo, accept: str | None) -> tuple[bytes, str]:
    """The exposition of ``stats`` and ``cluster`` in the format ``accept`` asks for, and its
    content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(stats, cluster))
    try:
        encode, content_type = choose_encoder(accept or "")
    except (TypeError, ValueError):  # a version parameter that is not a number ("version=x")
        encode, content_type = choose_encoder("")
    return encode(registry), content_type
