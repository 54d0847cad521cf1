"""The test session's exit (tests/conftest.py): a crash in the interpreter's finalisation does
not turn a passing session into a failed run, and a failing session still fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# An atexit handler runs during the interpreter's finalisation: reading address 0 there is the
# SIGSEGV CI saw after "656 passed" (exit 139).
CRASH_AT_EXIT = """
import atexit, ctypes, threading, time
atexit.register(lambda: ctypes.string_at(0))
threading.Thread(target=time.sleep, args=(60,), name="native-pool", daemon=True).start()

def test_passes():
    assert True
"""


def _run(tmp_path: Path, body: str, plugin: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_case.py").write_text(body)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    if plugin:
        args[3:3] = ["-p", "tests.conftest"]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_crash_in_finalisation_would_fail_the_run_without_the_exit_hook(tmp_path: Path) -> None:
    out = _run(tmp_path, CRASH_AT_EXIT, plugin=False)
    assert "1 passed" in out.stdout
    assert out.returncode == -11, (out.returncode, out.stderr[-2000:])


def test_the_exit_hook_keeps_the_sessions_status_and_names_live_threads(tmp_path: Path) -> None:
    out = _run(tmp_path, CRASH_AT_EXIT, plugin=True)
    assert "1 passed" in out.stdout
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "threads alive at exit: native-pool" in out.stderr


@pytest.mark.parametrize("body, status", [("def test_fails():\n    assert False\n", 1)])
def test_a_failing_session_still_fails(tmp_path: Path, body: str, status: int) -> None:
    out = _run(tmp_path, CRASH_AT_EXIT + "\n" + body, plugin=True)
    assert out.returncode == status, (out.returncode, out.stdout[-2000:])
