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
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

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


def _run(args: list[str], mark: str) -> None:
    out = subprocess.run(args, env=_env(mark), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def start_head(num_cpus: int, resources: dict[str, float] | None = None) -> RayNode:
    """A head node on a free port with its own temp dir (short path: unix socket limits)."""
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
    if resources:
        args.append(f"--resources={json.dumps(resources)}")
    node = RayNode(mark, f"127.0.0.1:{port}", temp, nm_port)
    try:
        _run(args, mark)
    except BaseException:
        kill_node(node)
        raise
    return node


def start_worker(head: RayNode, num_cpus: int, resources: dict[str, float]) -> RayNode:
    """A second node joining ``head`` (same machine) with extra custom ``resources``."""
    mark = uuid.uuid4().hex
    args = [
        RAY,
        "start",
        f"--address={head.address}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
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


def _has_mark(p: psutil.Process, mark: str | None = None) -> bool:
    try:
        value = p.environ().get(MARK)
    except (psutil.Error, OSError):
        return False
    return value is not None and (mark is None or value == mark)


def kill_node(node: RayNode) -> None:
    """SIGKILL every process of the node (marked ones and their descendants), scanning again
    until none is left (a process may be starting while the first scan runs)."""
    for _ in range(5):
        if not _kill_marked(node.mark):
            break
    shutil.rmtree(f"/tmp/dino-home-{node.mark[:12]}", ignore_errors=True)
    if node.temp_dir:
        time.sleep(0.2)
        shutil.rmtree(node.temp_dir, ignore_errors=True)


def _kill_marked(mark: str) -> int:
    """SIGKILL the processes carrying ``mark`` and their descendants; how many there were."""
    roots = [p for p in psutil.process_iter() if _has_mark(p, mark)]
    procs: dict[int, psutil.Process] = {}
    for p in roots:
        procs[p.pid] = p
        try:
            for child in p.children(recursive=True):
                procs[child.pid] = child
        except psutil.Error:
            pass
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(procs.values()), timeout=10)
    return len(procs)
