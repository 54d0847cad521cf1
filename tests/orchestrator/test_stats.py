"""Queue figures for Prometheus and the cluster view from orchestrator heartbeats."""

from __future__ import annotations

from datetime import timedelta

from orchestrator import registry
from orchestrator.db import Database
from orchestrator.models import Attempt, Job, Orchestrator, utcnow
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import cluster_info, queue_stats, submit_job
from orchestrator.service.stats import latency_stats
from orchestrator.states import transition
from worker.contracts import RUNNING


def test_latency_stats_quantiles_and_cumulative_buckets() -> None:
    stats = latency_stats([0.2, 0.4, 3.0, 0.05])
    assert stats.count == 4 and abs(stats.sum_s - 3.65) < 1e-9
    assert stats.p50_s == 0.2 and stats.p95_s == 3.0
    assert stats.buckets["0.1"] == 1 and stats.buckets["0.25"] == 2
    assert stats.buckets["0.5"] == 3 and stats.buckets["2.5"] == 3
    assert stats.buckets["5"] == 4 and stats.buckets["+Inf"] == 4
    empty = latency_stats([])
    assert empty.count == 0 and empty.p50_s is None and empty.buckets["+Inf"] == 0


def test_queue_stats_split_ready_blocked_and_backing_off(db: Database, alice: UserView) -> None:
    ready = submit_job(db, alice, JobRequest(name="ready", evals=["eval_knn"]))
    later = submit_job(db, alice, JobRequest(name="later"))
    claimed = submit_job(db, alice, JobRequest(name="claimed"))
    now = utcnow()
    with db.session() as s:
        row = s.get(Job, later.id)
        assert row is not None
        row.not_before = now + timedelta(hours=1)
        run = s.get(Job, claimed.id)
        assert run is not None
        transition(s, run, RUNNING, "claim")
        s.add(
            Attempt(
                job_id=run.id,
                number=1,
                status=RUNNING,
                actor_name="a",
                orchestrator_id="o",
                queued_at=now - timedelta(seconds=2),
                claimed_at=now,
                released=False,
            )
        )
    stats = queue_stats(db)
    assert stats.queue_length == 1  # "ready" only
    assert stats.waiting_dependencies == 1  # its k-NN job
    assert stats.backing_off == 1
    assert stats.jobs_by_state["QUEUED"] == 3 and stats.jobs_by_state["RUNNING"] == 1
    assert stats.jobs_by_state["FAILED"] == 0
    assert stats.scheduling_latency.count == 1
    assert abs((stats.scheduling_latency.p50_s or 0) - 2.0) < 1e-3
    assert ready.status == "QUEUED"


def test_cluster_info_reads_the_freshest_live_heartbeat(db: Database) -> None:
    assert cluster_info(db).orchestrators == [] and cluster_info(db).reported_at is None
    snap = {
        "total": {"CPU": 2.0},
        "available": {"CPU": 1.0},
        "nodes": [{"node_id": "n1"}],
        "lease_s": 20.0,
    }
    registry.register(db, "orch-a", "127.0.0.1:1", snap)
    registry.register(db, "orch-old", "127.0.0.1:1", {**snap, "total": {"CPU": 99.0}})
    with db.session() as s:
        old = s.get(Orchestrator, "orch-old")
        assert old is not None
        old.heartbeat_at = utcnow() - timedelta(minutes=5)
    info = cluster_info(db)
    assert [o.id for o in info.orchestrators] == ["orch-a"]
    assert info.resources_total == {"CPU": 2.0} and info.resources_available == {"CPU": 1.0}
    assert info.nodes == [{"node_id": "n1"}]
    registry.mark_stopped(db, "orch-a")
    assert cluster_info(db).orchestrators == []
