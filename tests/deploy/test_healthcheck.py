"""deploy/docker/dino-healthcheck.sh against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.deploy.deployfiles import HEALTHCHECK


class _Handler(BaseHTTPRequestHandler):
    """Answers every GET with ``status`` and records the path (per-test subclass)."""

    status: ClassVar[int] = 200
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def _check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(HEALTHCHECK), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_api_role_probes_healthz_on_the_configured_port(
    server: tuple[int, type[_Handler]],
) -> None:
    port, handler = server
    assert _check("api", DINO_HEALTHCHECK_PORT=str(port)).returncode == 0
    assert handler.seen == ["/healthz"]
    assert _check(DINO_ROLE="api", DINO_HEALTHCHECK_PORT=str(port)).returncode == 0


def test_an_unhealthy_answer_fails_the_check(server: tuple[int, type[_Handler]]) -> None:
    port, handler = server
    handler.status = 503
    out = _check("api", DINO_HEALTHCHECK_PORT=str(port))
    assert out.returncode != 0 and "503" in out.stderr


def test_nothing_listening_fails_the_check() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = _check("api", DINO_HEALTHCHECK_PORT=str(port))
    assert out.returncode != 0


def test_unknown_role_is_refused() -> None:
    out = _check("postgres")
    assert out.returncode == 2 and "use api, mlflow or ray" in out.stderr


def test_ray_and_mlflow_roles_probe_the_servers_default_ports() -> None:
    from ray._private import ray_constants

    text = HEALTHCHECK.read_text()
    agent = ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT
    assert f"http://127.0.0.1:{agent}/api/healthz" in text
    assert "http://127.0.0.1:5000/health" in text
