"""``GET /metrics`` in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.schemas import ClusterInfo, QueueStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def _labelled(name: str, label: str, values: Mapping[str, float]) -> list[str]:
    return [f'{name}{{{label}="{_escape(k)}"}} {_num(v)}' for k, v in sorted(values.items())]


def render(stats: QueueStats, cluster: ClusterInfo) -> str:
    """Queue length, jobs by state, scheduling latency histogram, live orchestrators and the
    cluster's resources (total and free) as last reported."""
    lat = stats.scheduling_latency
    buckets = [
        f'dino_scheduling_latency_seconds_bucket{{le="{_escape(le)}"}} {n}'
        for le, n in lat.buckets.items()
    ]
    lines = [
        *_family(
            "dino_queue_length",
            "gauge",
            "QUEUED jobs that may start now (dependencies met, no back-off).",
            [f"dino_queue_length {stats.queue_length}"],
        ),
        *_family(
            "dino_jobs_waiting_dependencies",
            "gauge",
            "QUEUED evaluation jobs whose pretraining job has not succeeded yet.",
            [f"dino_jobs_waiting_dependencies {stats.waiting_dependencies}"],
        ),
        *_family(
            "dino_jobs_backing_off",
            "gauge",
            "QUEUED retries still inside their back-off delay.",
            [f"dino_jobs_backing_off {stats.backing_off}"],
        ),
        *_family(
            "dino_jobs",
            "gauge",
            "Jobs by state.",
            _labelled("dino_jobs", "state", {k: float(v) for k, v in stats.jobs_by_state.items()}),
        ),
        *_family(
            "dino_scheduling_latency_seconds",
            "histogram",
            "Seconds from QUEUED to claimed by an orchestrator, over the most recent attempts.",
            [
                *buckets,
                f"dino_scheduling_latency_seconds_sum {_num(lat.sum_s)}",
                f"dino_scheduling_latency_seconds_count {lat.count}",
            ],
        ),
        *_family(
            "dino_orchestrators_alive",
            "gauge",
            "Orchestrator processes with a fresh heartbeat.",
            [f"dino_orchestrators_alive {len(cluster.orchestrators)}"],
        ),
        *_family(
            "dino_cluster_resources_total",
            "gauge",
            "Ray cluster resources (as last reported by an orchestrator heartbeat).",
            _labelled("dino_cluster_resources_total", "resource", cluster.resources_total),
        ),
        *_family(
            "dino_cluster_resources_available",
            "gauge",
            "Free Ray cluster resources (as last reported by an orchestrator heartbeat).",
            _labelled("dino_cluster_resources_available", "resource", cluster.resources_available),
        ),
    ]
    return "\n".join(lines) + "\n"
