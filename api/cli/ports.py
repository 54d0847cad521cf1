"""Ports ``dino serve`` is asked to listen on, checked before anything starts.

Without the check a taken ``--port`` surfaced as uvicorn's ``[Errno 98]`` after the
orchestrator and its local Ray had started (and were stopped again), and a taken
``--mlflow-port`` as ``mlflow ui`` exiting with status 0 while the API kept running.
"""

from __future__ import annotations

import contextlib
import socket

import typer


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails as the servers' own bind would (``SO_REUSEADDR``,
    as uvicorn sets it, so a socket in TIME_WAIT from an earlier run does not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_serve_ports(host: str, port: int, mlflow_port: int | None) -> None:
    """A clear error naming the option when a port ``dino serve`` needs is taken;
    ``mlflow_port`` is None when no ``mlflow ui`` is started."""
    if mlflow_port is not None and mlflow_port == port:
        raise typer.BadParameter(
            f"{port} is also --port: give the MLflow UI a port of its own",
            param_hint="--mlflow-port",
        )
    for option, (where, number) in {
        "--port": (host, port),
        "--mlflow-port": ("127.0.0.1", mlflow_port),
    }.items():
        if number is not None and port_in_use(where, number):
            raise typer.BadParameter(
                f"{where}:{number} is already in use (another dino serve or mlflow ui?): "
                f"pick a free port with {option}, or stop what listens there",
                param_hint=option,
            )
