"""A server process on 127.0.0.1 for tests, benchmarks and demos: started in its own session,
awaited until its health URL answers 200, stopped by its process id (SIGTERM, then SIGKILL of
the process group it was started in)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(
    cmd: list[str],
    health_url: str,
    log_path: Path,
    start_timeout_s: float,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (logging to ``log_path``) until the context exits; yields once
    ``health_url`` answers 200."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _healthy(health_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{Path(cmd[0]).name} did not answer {health_url} within "
                    f"{start_timeout_s:.0f} s (exit code {proc.poll()}); see {log_path}"
                )
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group started above, by its id
            proc.wait(timeout=15)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
