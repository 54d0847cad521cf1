"""``dino serve`` refuses a taken port before it starts anything: the error names the option,
and DINO_HOME stays untouched (no database, no orchestrator, no local Ray)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from api.cli.ports import port_in_use
from tests.orchestrator.raynodes import free_port


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port with a listening socket on 127.0.0.1 for the test's duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _serve(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["serve", *args], env={"DINO_HOME": str(home), "COLUMNS": "200"}
    )
    return result.exit_code, result.output


def test_a_held_port_is_in_use_and_a_free_one_is_not(held_port: int) -> None:
    assert port_in_use("127.0.0.1", held_port)
    assert not port_in_use("127.0.0.1", free_port())


def test_a_taken_api_port_is_refused_naming_port(tmp_path: Path, held_port: int) -> None:
    code, out = _serve(tmp_path / "home", "--port", str(held_port))
    assert code == 2, out
    assert "--port" in out and f"127.0.0.1:{held_port} is already in use" in out, out
    assert not (tmp_path / "home").exists()


def test_a_taken_mlflow_port_is_refused_naming_mlflow_port(tmp_path: Path, held_port: int) -> None:
    args = ["--port", str(free_port()), "--mlflow-ui", "--mlflow-port", str(held_port)]
    code, out = _serve(tmp_path / "home", *args)
    assert code == 2, out
    assert "--mlflow-port" in out and "already in use" in out, out
    assert not (tmp_path / "home").exists()


def test_one_port_for_the_api_and_the_ui_is_refused(tmp_path: Path) -> None:
    port = str(free_port())
    code, out = _serve(tmp_path / "home", "--port", port, "--mlflow-ui", "--mlflow-port", port)
    assert code == 2, out
    assert "--mlflow-port" in out and "also --port" in out, out
    assert not (tmp_path / "home").exists()
