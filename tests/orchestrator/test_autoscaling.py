"""Autoscaling, really exercised (issue #18 item 4): Ray's autoscaler with its fake multi-node
provider adds and removes raylets on this machine, and the orchestrator drives it.

The worker node type is the deploy files' GPU worker (`gpu_worker`, one GPU per node), with one
CPU instead of four so that it fits this 2-core machine; the head has one CPU and no GPU. A job
waiting for a GPU makes the orchestrator ask the autoscaler for one (``request_resources``); it
shows "waiting for capacity" until the node has joined, runs there, and the idle node goes
after its idle timeout. A node lost under a running job costs no attempt: the job resumes from
its checkpoint on the next GPU node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from orchestrator.db import Database
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import submit_job
from tests.orchestrator.harness import (
    attempts_of,
    events_of,
    job_row,
    running_scheduler,
    status_of,
    wait_until,
)
from tests.orchestrator.jobfns import read_log
from tests.orchestrator.raynodes import (
    RayNode,
    connected,
    kill_fake_node,
    kill_node,
    start_autoscaling_head,
    start_worker,
)
from worker.contracts import Resources

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "deploy" / "ray" / "cluster-aws.yaml"
KUBERAY = REPO / "deploy" / "kuberay" / "raycluster.yaml"
GPU_TYPE = "gpu_worker"
IDLE_S = 6.0

# a head, its autoscaler and three raylets (~60 s on 2 cores); SQLite only: the cluster is
# the subject here, the database backends are every other scheduler test's
cluster_test = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def node_types() -> dict[str, dict[str, Any]]:
    """The launcher's GPU worker type, scaled to this machine: 1 CPU, its GPU count, and one
    node more than a job needs (a lost node stays listed until the autoscaler reaps it)."""
    launcher = yaml.safe_load(LAUNCHER.read_text())["available_node_types"][GPU_TYPE]
    resources = {**launcher["resources"], "CPU": 1}
    return {
        GPU_TYPE: {"resources": resources, "node_config": {}, "min_workers": 0, "max_workers": 2}
    }


@pytest.fixture(scope="module")
def autoscaling_head() -> Iterator[RayNode]:
    node = start_autoscaling_head(node_types(), head_cpus=1, idle_timeout_s=IDLE_S)
    try:
        yield node
    finally:
        kill_node(node)


@pytest.fixture
def autoscaling_ray(autoscaling_head: RayNode) -> Iterator[RayNode]:
    with connected(autoscaling_head) as node:
        yield node


def gpu_nodes() -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("GPU")]


def _gpu_job(db: Database, user: UserView, seed: int, **tags: str) -> str:
    req = JobRequest(
        name=f"gpu{seed}",
        config={"train": {"seed": seed}},
        resources=Resources(num_cpus=1, num_gpus=1),
        tags=tags,
    )
    return submit_job(db, user, req).id


def _story(db: Database, job_id: str) -> str:
    """The job's events and the cluster's nodes, for a failure message."""
    events = "\n".join(f"  {e.kind} a{e.attempt}: {e.reason[:300]}" for e in events_of(db, job_id))
    nodes = [(n["NodeID"][-6:], n.get("Alive"), n["Resources"]) for n in ray.nodes()]
    return f"events:\n{events}\nnodes: {nodes}"


def _until(db: Database, job_id: str, check: Any, what: str, timeout: float) -> None:
    try:
        wait_until(check, what, timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{_story(db, job_id)}") from None


def _placed_on(db: Database, job_id: str) -> list[str]:
    return [str(e.data["node_id"]) for e in events_of(db, job_id, "placed")]


def test_deploy_files_declare_the_node_type_this_test_scales() -> None:
    launcher = yaml.safe_load(LAUNCHER.read_text())
    gpu = launcher["available_node_types"][GPU_TYPE]
    assert gpu["resources"]["GPU"] == node_types()[GPU_TYPE]["resources"]["GPU"] == 1
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1
    assert not launcher["available_node_types"][launcher["head_node_type"]]["resources"]
    kuberay = yaml.safe_load(KUBERAY.read_text())
    assert kuberay["spec"]["enableInTreeAutoscaling"] is True
    (group,) = kuberay["spec"]["workerGroupSpecs"]
    (container,) = group["template"]["spec"]["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert group["minReplicas"] == 0 and group["maxReplicas"] >= 1


@cluster_test[0]
@cluster_test[1]
def test_a_job_for_a_missing_node_type_scales_the_cluster_up_then_down(
    db: Database, alice: UserView, autoscaling_ray: RayNode
) -> None:
    assert gpu_nodes() == []
    job = _gpu_job(db, alice, 0, **{"t.steps": "10", "t.step_s": "0.1"})
    with running_scheduler(db, autoscaling=True, warm_actor_idle_s=1.0):
        _until(db, job, lambda: status_of(db, job) == "SUCCEEDED", "the job on a GPU node", 180)
        placed = _placed_on(db, job)
        assert len(placed) == 1, _story(db, job)
        node = placed[0]
        wait_until(lambda: node not in gpu_nodes(), "the idle GPU node to be removed", 180)
    (waiting,) = events_of(db, job, "waiting")
    assert waiting.reason.startswith("waiting for capacity: needs 1 GPU")
    assert "the autoscaler was asked for a node with these resources" in waiting.reason
    assert [a.status for a in attempts_of(db, job)] == ["SUCCEEDED"]


@cluster_test[0]
@cluster_test[1]
def test_a_node_lost_under_its_job_costs_no_attempt_and_the_job_resumes_elsewhere(
    db: Database, alice: UserView, autoscaling_ray: RayNode
) -> None:
    """The node the autoscaler added for the job dies with it (its raylet and workers are
    killed, as when a spot instance is reclaimed): the attempt is LOST without counting, the
    job waits for capacity again, and resumes from its checkpoint on the GPU node that joins
    next. (Ray's fake provider keeps listing a node whose processes were killed, so its
    autoscaler counts that node's GPU and launches no replacement for a standing request; a
    GPU node started by hand joins instead, as a replacement from a real provider would.)"""
    job = _gpu_job(db, alice, 1, **{"t.steps": "200", "t.step_s": "0.05"})
    replacement: RayNode | None = None
    try:
        with running_scheduler(db, autoscaling=True, warm_actor_idle_s=1.0):
            _until(db, job, lambda: (job_row(db, job).step or 0) >= 5, "progress on a GPU", 180)
            (first,) = _placed_on(db, job)
            assert kill_fake_node(first) > 0
            requeued = lambda: (job_row(db, job).attempt, status_of(db, job)) == (2, "QUEUED")  # noqa: E731
            _until(db, job, requeued, "the job to wait for capacity again", 60)
            replacement = start_worker(autoscaling_ray, num_cpus=1, resources={}, num_gpus=1)
            _until(db, job, lambda: status_of(db, job) == "SUCCEEDED", "the job, resumed", 180)
    finally:
        if replacement is not None:
            kill_node(replacement)
    lost, done = attempts_of(db, job)
    assert lost.status == "LOST" and done.status == "SUCCEEDED"
    assert lost.mlflow_run_id and lost.mlflow_run_id == done.mlflow_run_id  # one run
    assert job_row(db, job).failed_attempts == 0 and events_of(db, job, "node_lost")
    assert _placed_on(db, job)[1] != first
    starts = [e["step"] for e in read_log(job_row(db, job).storage_uri) if e["event"] == "start"]
    assert starts[0] == 0 and starts[1] >= 5  # from its checkpoint, not from scratch
