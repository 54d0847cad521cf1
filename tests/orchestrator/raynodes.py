"""Starting and killing Ray nodes for tests (``ray start``), by PID, never ``ray stop``.

Every process a node starts carries an environment marker; the node is stopped by sending
SIGKILL to those processes and their descendants (raylet and gcs ignore SIGTERM here), so
other Ray clusters on the machine are left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.marked_processes import kill_marked

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
MARK = "DINO_TEST_RAY_MARK"


def use_test_token() -> None:
    """Token auth on, with a token of this test session, for every Ray process we start or
    connect from (Ray 2.60 never auto-enables it for an explicit address)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    # Ray caches the mode and token when it is imported: make this process see them now.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RayNode:
    mark: str
    address: str
    temp_dir: str | None = None
    node_manager_port: int = 0


def _env(mark: str) -> dict[str, str]:
    env = dict(os.environ)
    env[MARK] = mark
    env["DINO_HOME"] = f"/tmp/dino-home-{mark[:12]}"  # not the repo: jobs pass their paths
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # a SIGKILLed node is declared dead within ~3 s instead of ~30 s
    env["RAY_health_check_period_ms"] = "1000"
    env["RAY_health_check_timeout_ms"] = "1000"
    env["RAY_health_check_failure_threshold"] = "3"
    env.pop("RAY_ADDRESS", None)
    return env


def _port_args(node_manager_port: int) -> list[str]:
    names = [
        "--object-manager-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
    ]
    return [f"--node-manager-port={node_manager_port}"] + [f"{n}={free_port()}" for n in names]


def _run(args: list[str], mark: str, extra_env: dict[str, str] | None = None) -> None:
    env = {**_env(mark), **(extra_env or {})}
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


@contextlib.contextmanager
def connected(node: RayNode) -> Iterator[RayNode]:
    """This test process connected to ``node``'s cluster (namespace dino-test) in the block."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address=node.address, namespace="dino-test", log_to_driver=False)
    try:
        yield node
    finally:
        ray.shutdown()


def start_head(num_cpus: int, resources: dict[str, float] | None = None) -> RayNode:
    """A head node on a free port with its own temp dir (short path: unix socket limits)."""
    extra = [f"--resources={json.dumps(resources)}"] if resources else []
    return _start_head(num_cpus, lambda port, temp: extra)


def _start_head(
    num_cpus: int,
    extra_args: Callable[[int, str], list[str]],
    extra_env: dict[str, str] | None = None,
) -> RayNode:
    """``ray start --head`` on a free port with its own temp dir and marked processes;
    ``extra_args(port, temp_dir)`` gives the options of the kind of head."""
    use_test_token()
    mark = uuid.uuid4().hex
    temp = tempfile.mkdtemp(prefix="dray-", dir="/tmp")
    port = free_port()
    args = [
        RAY,
        "start",
        "--head",
        f"--port={port}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--temp-dir={temp}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--ray-client-server-port={free_port()}",
        *_port_args(nm_port := free_port()),
    ]
    node = RayNode(mark, f"127.0.0.1:{port}", temp, nm_port)
    try:
        _run(args + extra_args(port, temp), mark, extra_env)
    except BaseException:
        kill_node(node)
        raise
    return node


def start_worker(
    head: RayNode, num_cpus: int, resources: dict[str, float], num_gpus: int = 0
) -> RayNode:
    """A second node joining ``head`` (same machine) with extra custom ``resources`` (and
    ``num_gpus`` GPUs as Ray counts them: no device is needed for a job that uses none)."""
    mark = uuid.uuid4().hex
    args = [
        RAY,
        "start",
        f"--address={head.address}",
        f"--num-cpus={num_cpus}",
        f"--num-gpus={num_gpus}",
        f"--resources={json.dumps(resources)}",
        "--disable-usage-stats",
        *_port_args(nm_port := free_port()),
    ]
    node = RayNode(mark, head.address, node_manager_port=nm_port)
    try:
        _run(args, mark)
    except BaseException:
        kill_node(node)
        raise
    return node


def node_id_of(node: RayNode) -> str | None:
    """The Ray node id of ``node`` while it is alive (this process must be connected)."""
    import ray

    for n in ray.nodes():
        if n.get("Alive") and n.get("NodeManagerPort") == node.node_manager_port:
            return str(n["NodeID"])
    return None


def node_alive(node: RayNode) -> bool:
    return node_id_of(node) is not None


def kill_node(node: RayNode) -> None:
    """SIGKILL every process of the node (marked ones and their descendants)."""
    kill_marked(MARK, node.mark)
    shutil.rmtree(f"/tmp/dino-home-{node.mark[:12]}", ignore_errors=True)
    if node.temp_dir:
        time.sleep(0.2)
        shutil.rmtree(node.temp_dir, ignore_errors=True)


def start_autoscaling_head(
    node_types: dict[str, dict[str, object]],
    head_cpus: int = 0,
    idle_timeout_s: float = 6.0,
) -> RayNode:
    """A head whose autoscaler launches and removes worker nodes on this machine: Ray's fake
    multi-node provider (``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config``), with
    ``node_types`` as the cluster config's worker types. Its nodes are processes started by the
    head's monitor, so they carry the head's mark and :func:`kill_node` stops them too."""

    def with_config(port: int, temp: str) -> list[str]:
        config = {
            "cluster_name": f"dino-test-{Path(temp).name}",
            "max_workers": sum(int(str(t.get("max_workers", 0))) for t in node_types.values()),
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": idle_timeout_s / 60.0,
            "provider": {
                "type": "fake_multinode",
                "gcs_address": f"127.0.0.1:{port}",
                "use_node_id_as_ip": True,  # the provider's nodes are named by their node ids
                "disable_node_updaters": True,  # no SSH set-up of a node that is a local process
                "disable_launch_config_check": True,
            },
            "auth": {"ssh_user": "ray"},
            "available_node_types": {
                "ray.head.default": {
                    "resources": {"CPU": head_cpus},
                    "node_config": {},
                    "max_workers": 0,
                },
                **node_types,
            },
            "head_node_type": "ray.head.default",
            **{k: [] for k in ("cluster_synced_files", "rsync_exclude", "rsync_filter")},
            **{
                k: []
                for k in (
                    "initialization_commands",
                    "setup_commands",
                    "head_setup_commands",
                    "worker_setup_commands",
                    "head_start_ray_commands",
                    "worker_start_ray_commands",
                )
            },
            "file_mounts": {},
            "file_mounts_sync_continuously": False,
        }
        config_path = Path(temp) / "autoscaling.json"
        config_path.write_text(json.dumps(config))
        return [f"--autoscaling-config={config_path}"]

    env = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    return _start_head(head_cpus, with_config, env)


def kill_fake_node(node_id: str) -> int:
    """SIGKILL the processes of one node of the fake multi-node provider (they carry its id in
    ``RAY_OVERRIDE_NODE_ID_FOR_TESTING``), as when its machine is lost; how many there were."""
    return kill_marked("RAY_OVERRIDE_NODE_ID_FOR_TESTING", node_id)
