"""deploy/docker/Dockerfile: base image, Python, non-root user, telemetry, health check, and
that what it copies and runs exists (offline: the file is read, never built)."""

from __future__ import annotations

import fnmatch
import re
import subprocess

import pytest

from tests.deploy.deployfiles import (
    DOCKERFILE,
    DOCKERIGNORE,
    ENTRYPOINT,
    REPO,
    dockerfile_env,
    dockerfile_instructions,
    exec_form,
)


def _one(keyword: str) -> str:
    found = [i.args for i in dockerfile_instructions() if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in {DOCKERFILE}, found {found}"
    return found[0]


def _arg_default(name: str) -> str:
    for ins in dockerfile_instructions():
        if ins.keyword == "ARG" and ins.args.startswith(f"{name}="):
            return ins.args.split("=", 1)[1].strip('"')
    raise AssertionError(f"no ARG {name}=... in {DOCKERFILE}")


def test_base_image_is_a_cuda_ubuntu_image_matching_the_torch_build() -> None:
    import torch

    base = _arg_default("CUDA_IMAGE")
    m = re.fullmatch(
        r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(base|runtime|cudnn-runtime)-ubuntu22\.04", base
    )
    assert m, f"CUDA_IMAGE {base!r} is not an nvidia/cuda runtime-class Ubuntu 22.04 tag"
    assert torch.version.cuda is not None, "the environment's torch is not a CUDA build"
    assert m.group(1) == torch.version.cuda.split(".")[0], (
        f"base image CUDA {m.group(1)}.x but torch bundles CUDA {torch.version.cuda}: the "
        "driver the base image requires must cover the CUDA major torch was built for"
    )
    assert [i.args for i in dockerfile_instructions() if i.keyword == "FROM"][-1] == (
        "${CUDA_IMAGE}"
    ), "the final stage must be the CUDA base"


def test_python_version_matches_the_project() -> None:
    import sys
    import tomllib

    wanted = _arg_default("PYTHON_VERSION")
    assert wanted == f"{sys.version_info.major}.{sys.version_info.minor}", (
        f"image Python {wanted} differs from the development Python {sys.version}"
    )
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.search(r">=\s*(\d+\.\d+)", requires)
    assert low and tuple(map(int, wanted.split("."))) >= tuple(map(int, low.group(1).split(".")))


def test_runs_as_a_non_root_user_created_in_the_image() -> None:
    user = _one("USER")
    assert user not in ("root", "0"), "the image must not run as root"
    runs = " ".join(i.args for i in dockerfile_instructions() if i.keyword == "RUN")
    assert "useradd" in runs and user in runs, f"USER {user} is never created"


def test_telemetry_is_off_and_paths_point_at_owned_directories() -> None:
    env = dockerfile_env()
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    assert env["DO_NOT_TRACK"] == "1"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    runs = " ".join(i.args for i in dockerfile_instructions() if i.keyword == "RUN")
    chowned = runs.split("chown", 1)[1]
    for key in ("DINO_HOME", "DINO_DATA_DIR"):
        assert env[key] in chowned, f"{key}={env[key]} is not created/owned for the user"
    assert env["DINO_STORAGE_URI"].startswith("/shared/"), "checkpoints must be on /shared"
    assert "/shared" in chowned


def test_constraints_file_is_used_when_present() -> None:
    copies = [i.args for i in dockerfile_instructions() if i.keyword == "COPY"]
    assert any("constraints.tx[t]" in c for c in copies), "constraints.txt is never copied"
    install = next(i.args for i in dockerfile_instructions() if "-r pyproject.toml" in i.args)
    assert "-c constraints.txt" in install


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for ins in dockerfile_instructions():
        if ins.keyword != "COPY" or "--from=" in ins.args:
            continue
        parts = [p for p in ins.args.split() if not p.startswith("--")]
        sources.extend(parts[:-1])
    return sources


def test_every_copied_path_exists_and_passes_the_dockerignore() -> None:
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for rule in rules:  # later rules win, "!" re-includes
            negate = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    optional = {"constraints.tx[t]", "README.m[d]"}
    for src in _copy_sources():
        if src in optional:
            continue
        assert (REPO / src).exists(), f"COPY {src}: no such path in the repository"
        assert included(src), f"COPY {src}: excluded by {DOCKERIGNORE.name}"
    assert not included(".venv") and not included(".git") and not included("deploy/env/x.env")


def test_entrypoint_and_healthcheck_run_scripts_the_image_installs() -> None:
    entry = exec_form(next(i for i in dockerfile_instructions() if i.keyword == "ENTRYPOINT"))
    assert entry[:3] == ["tini", "-g", "--"], "tini must be PID 1 and signal the process group"
    installed = {
        parts[-1].rsplit("/", 1)[-1]: parts[-2]
        for ins in dockerfile_instructions()
        if ins.keyword == "COPY" and (parts := ins.args.split())[-1].startswith("/usr/local/bin/")
    }
    assert installed.get(entry[3]) == str(ENTRYPOINT.relative_to(REPO))
    health = exec_form(next(i for i in dockerfile_instructions() if i.keyword == "HEALTHCHECK"))
    assert health[0] in installed, f"HEALTHCHECK runs {health[0]}, which the image lacks"


def test_default_command_is_a_dino_cli_command_with_its_options() -> None:
    import typer.main

    from api.cli.main import app

    cmd = exec_form(next(i for i in dockerfile_instructions() if i.keyword == "CMD"))
    assert cmd[0] == "with-ray", "the API must join the Ray cluster before serving"
    assert cmd[1] == "dino"
    group = typer.main.get_command(app)
    sub = group.commands.get(cmd[2])  # type: ignore[attr-defined]
    assert sub is not None, f"`dino {cmd[2]}` is not a command of api.cli.main.app"
    options = {o for p in sub.params for o in getattr(p, "opts", [])}
    for flag in (a for a in cmd[3:] if a.startswith("--")):
        assert flag in options, f"`dino {cmd[2]}` has no option {flag}"


@pytest.mark.parametrize("script", ["dino-entrypoint.sh", "dino-healthcheck.sh"])
def test_scripts_are_valid_bash(script: str) -> None:
    path = DOCKERFILE.parent / script
    out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
