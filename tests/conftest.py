"""The test session is an entry point like ``python -m orchestrator``: it sets the worker's
process environment (telemetry off, short MLflow retries) before any test imports MLflow.

It also ends like one that holds native threads: once pytest has reported, the process leaves
with the session's exit status through ``os._exit``, skipping the interpreter's finalisation.
CI on 2026-12-05 printed ``656 passed, 9 skipped`` and then died of SIGSEGV in that
finalisation (exit 139, the run failed): threads of native libraries (Ray's core worker and
gRPC, torch's pools, MLflow's async logger) still running while Python tears its objects
down. Nothing of a test's outcome is decided there: every fixture has been torn down and the
report written. The threads still alive are named on stderr so the culprit can be found.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest

from worker.env import apply_worker_env

apply_worker_env()

_SESSION: list[pytest.Session] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _SESSION.append(session)


def leftover_threads() -> list[str]:
    """Names of the threads other than the main one still alive."""
    main = threading.main_thread()
    return sorted(t.name for t in threading.enumerate() if t is not main and t.is_alive())


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _SESSION or hasattr(config, "workerinput"):  # a plugin's own sub-session: leave it
        return
    status = int(_SESSION[0].exitstatus)
    threads = leftover_threads()
    if threads:
        print(f"\ntest session: threads alive at exit: {', '.join(threads)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
