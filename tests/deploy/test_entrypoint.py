"""deploy/docker/dino-entrypoint.sh run for real with bash and flock.

This machine has no GPU and no Ray cluster to join, so two commands are stand-ins on PATH: an
``nvidia-smi`` that lists N GPUs, and a ``ray`` that records the environment and arguments of
``ray start`` and, with ``--block``, stays up like a raylet until its process group is killed.
A third, ``nproc``, pins the host's CPU count. What is under test is the script: which GPUs
and CPUs each worker replica claims, and what it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.deployfiles import ENTRYPOINT

FAKE_NVIDIA_SMI = """#!/usr/bin/env bash
for ((i = 0; i < ${FAKE_GPUS:-0}; i++)); do echo "GPU $i: Stand-in GPU (UUID: GPU-$i)"; done
"""
FAKE_NPROC = """#!/usr/bin/env bash
echo "${FAKE_NPROC:-16}"
"""
FAKE_RAY = """#!/usr/bin/env bash
echo "cvd=${CUDA_VISIBLE_DEVICES-unset} args=$*" >"$FAKE_RAY_LOG/.$$"
mv "$FAKE_RAY_LOG/.$$" "$FAKE_RAY_LOG/$$"  # appears whole
if [[ " $* " == *" --block "* && -z "${FAKE_RAY_NOBLOCK:-}" ]]; then
    while :; do sleep 0.2; done
fi
"""


START = "start --address=ray-head:6379 --labels=dino-role=worker --block"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("nvidia-smi", FAKE_NVIDIA_SMI), ("ray", FAKE_RAY), ("nproc", FAKE_NPROC)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "log").mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_RAY_LOG": str(tmp_path / "log"),
        "DINO_GPU_LOCK_DIR": str(tmp_path / "locks"),
        "RAY_HEAD_ADDRESS": "ray-head:6379",
        "HOME": str(tmp_path),
    }


def _calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_RAY_LOG"])
    return sorted(p.read_text().strip() for p in log.iterdir() if not p.name.startswith("."))


def _run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def replicas() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker replicas started in their own process groups; all killed at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _start_replica(
    env: dict[str, str], started: list[subprocess.Popen[str]], *args: str, **extra: str
) -> subprocess.Popen[str]:
    before = len(_calls(env))
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINT), "ray-worker", *args],
        env={**env, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(proc)
    deadline = time.monotonic() + 30
    while len(_calls(env)) == before:  # wait until it holds its slot and "ray start" runs
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the replica never started ray"
        time.sleep(0.05)
    return proc


def test_replicas_claim_distinct_gpus_and_a_freed_gpu_is_reused(
    env: dict[str, str], replicas: list[subprocess.Popen[str]]
) -> None:
    first = _start_replica(env, replicas, FAKE_GPUS="2")
    _start_replica(env, replicas, FAKE_GPUS="2")
    assert _calls(env) == [
        f"cvd=0 args={START} --num-gpus=1 --num-cpus=8",
        f"cvd=1 args={START} --num-gpus=1 --num-cpus=8",
    ]
    third = _run(env, "ray-worker", FAKE_GPUS="2")
    assert third.returncode == 1
    assert "scale ray-worker to at most 2 per host" in third.stderr
    os.killpg(first.pid, signal.SIGKILL)  # the container of replica 1 goes away
    first.wait(timeout=30)
    for p in Path(env["FAKE_RAY_LOG"]).iterdir():
        p.unlink()
    _start_replica(env, replicas, FAKE_GPUS="2")
    assert _calls(env) == [f"cvd=0 args={START} --num-gpus=1 --num-cpus=8"]


def test_operator_arguments_come_last_so_they_win(
    env: dict[str, str], replicas: list[subprocess.Popen[str]]
) -> None:
    """`ray start` (click) keeps the last value of a repeated option."""
    _start_replica(env, replicas, "--num-cpus=3", FAKE_GPUS="4")
    assert _calls(env) == [f"cvd=0 args={START} --num-gpus=1 --num-cpus=4 --num-cpus=3"]


def test_multi_gpu_slots_are_contiguous(
    env: dict[str, str], replicas: list[subprocess.Popen[str]]
) -> None:
    for _ in range(2):
        _start_replica(env, replicas, FAKE_GPUS="5", DINO_WORKER_GPUS="2")
    calls = _calls(env)
    assert [c.split(" ")[0] for c in calls] == ["cvd=0,1", "cvd=2,3"]
    assert all(c.endswith("--block --num-gpus=2 --num-cpus=6") for c in calls)  # 16 x 2 / 5
    third = _run(env, "ray-worker", FAKE_GPUS="5", DINO_WORKER_GPUS="2")
    assert third.returncode == 1 and "at most 2 per host" in third.stderr


@pytest.mark.parametrize(
    ("gpus", "want", "expected_tail"),
    [
        ("0", "1", "--block --num-gpus=0 --num-cpus=3"),  # no GPU visible: a CPU worker
        ("4", "all", "--block --num-cpus=3"),  # every GPU, none claimed, Ray counts them
    ],
)
def test_unclaimed_workers_start_ray_directly(
    env: dict[str, str], gpus: str, want: str, expected_tail: str
) -> None:
    out = _run(
        env,
        "ray-worker",
        "--num-cpus=3",
        FAKE_GPUS=gpus,
        DINO_WORKER_GPUS=want,
        FAKE_RAY_NOBLOCK="1",
    )
    assert out.returncode == 0, out.stderr
    assert _calls(env) == [
        f"cvd=unset args=start --address=ray-head:6379 --labels=dino-role=worker {expected_tail}"
    ]
    assert not Path(env["DINO_GPU_LOCK_DIR"]).exists(), "no GPU slot may be claimed"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"DINO_WORKER_GPUS": "0"}, "positive whole number"),
        ({"DINO_WORKER_GPUS": "two"}, "positive whole number"),
        ({"RAY_HEAD_ADDRESS": ""}, "RAY_HEAD_ADDRESS"),
    ],
)
def test_bad_worker_settings_are_refused(
    env: dict[str, str], extra: dict[str, str], message: str
) -> None:
    out = _run(env, "ray-worker", FAKE_GPUS="1", **extra)
    assert out.returncode != 0 and message in out.stderr
    assert _calls(env) == [], "ray must not start"


def test_with_ray_joins_the_cluster_as_an_empty_node_then_runs_the_command(
    env: dict[str, str],
) -> None:
    out = _run(env, "with-ray", "echo", "served", RAY_ADDRESS="ray-head:6379")
    assert out.returncode == 0 and out.stdout.strip() == "served"
    assert _calls(env) == [
        "cvd=unset args=start --address=ray-head:6379 --num-cpus=0 --num-gpus=0 "
        "--labels=dino-role=driver"
    ]


@pytest.mark.parametrize("address", ["", "auto", "ray://head:10001"])
def test_with_ray_without_a_cluster_address_only_runs_the_command(
    env: dict[str, str], address: str
) -> None:
    out = _run(env, "with-ray", "echo", "served", RAY_ADDRESS=address)
    assert out.returncode == 0 and out.stdout.strip() == "served"
    assert _calls(env) == []


def test_other_commands_run_as_given_and_no_command_is_an_error(env: dict[str, str]) -> None:
    out = _run(env, "bash", "-c", "echo $((6 * 7))")
    assert out.returncode == 0 and out.stdout.strip() == "42"
    assert _run(env).returncode == 2
    assert _run(env, "with-ray").returncode == 2
