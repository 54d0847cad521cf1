"""``scripts/postgres.sh``: start a throwaway server, use it, stop it by directory and by PID."""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"

pytestmark = pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/initdb"),
    reason="no PostgreSQL server binaries (scripts/postgres.sh installs them as root)",
)


def _start(target: Path) -> str:
    out = subprocess.run(
        [str(SCRIPT), "start", str(target)], capture_output=True, text=True, timeout=120, check=True
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout  # stdout is the URL only, for $(...) in CI
    return lines[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_use_and_stop_by_dir_and_by_pid() -> None:
    first, second = (
        Path("/tmp") / f"dino-pg-test-{os.getpid()}-a",
        Path("/tmp") / f"dino-pg-test-{os.getpid()}-b",
    )
    url = _start(first)
    assert url.startswith("postgresql+psycopg://dino@127.0.0.1:") and url.endswith("/dino")
    assert (first / "url").read_text().strip() == url
    pid = int((first / "postgres.pid").read_text())
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT current_database(), 1 + 1").fetchone() == ("dino", 2)
    url2 = _start(second)
    assert url2 != url  # each server gets its own free port
    pid2 = int((second / "postgres.pid").read_text())
    subprocess.run([str(SCRIPT), "stop", str(first)], check=True, timeout=60)
    assert not _alive(pid) and not first.exists()
    subprocess.run([str(SCRIPT), "stop", str(pid2)], check=True, timeout=60)
    assert not _alive(pid2) and (second / "url").exists()  # by PID: files are kept
    subprocess.run([str(SCRIPT), "stop", str(second)], check=True, timeout=60)
    assert not second.exists()


def test_stop_without_arguments_stops_the_last_start(tmp_path: Path) -> None:
    last = tmp_path / "last"  # not the default file: a CI run may be using that one
    env = {**os.environ, "DINO_PG_LAST": str(last)}
    url = subprocess.run(
        [str(SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=True, env=env
    ).stdout.strip()
    data = Path(last.read_text().strip())
    pid = int((data / "postgres.pid").read_text())
    assert (data / "url").read_text().strip() == url
    subprocess.run([str(SCRIPT), "stop"], check=True, timeout=60, env=env)  # as scripts/test.sh
    assert not _alive(pid) and not data.exists() and not last.exists()


def test_stop_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    out = subprocess.run([str(SCRIPT), "stop", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode != 0 and "refusing to touch it" in out.stderr
    assert tmp_path.exists()
