"""Readers for the deployment files under deploy/ and for what the code reads from the
environment, shared by the tests of this folder. Everything here works offline."""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"
ENTRYPOINT = DEPLOY / "docker" / "dino-entrypoint.sh"
HEALTHCHECK = DEPLOY / "docker" / "dino-healthcheck.sh"
COMPOSE = DEPLOY / "compose.yaml"
ENV_DIR = DEPLOY / "env"
KUBERAY = DEPLOY / "kuberay"
LAUNCHER = DEPLOY / "ray" / "cluster-aws.yaml"
OUR_PACKAGES = ("dino_core", "worker", "orchestrator", "api")
OUR_SCRIPTS = (ENTRYPOINT, HEALTHCHECK)
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[Any]:
    """Every non-empty document of a (multi-document) YAML file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kube_docs() -> list[dict[str, Any]]:
    """Every Kubernetes object of deploy/kuberay/*.yaml."""
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBERAY.glob("*.yaml")):
        docs.extend(load_yaml_all(path))
    return docs


def kube_objects(kind: str) -> list[dict[str, Any]]:
    return [d for d in kube_docs() if d.get("kind") == kind]


def pod_containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The containers of a Deployment, or of every group of a RayCluster."""
    if obj["kind"] == "RayCluster":
        groups = [obj["spec"]["headGroupSpec"], *obj["spec"].get("workerGroupSpecs", [])]
        for group in groups:
            yield from group["template"]["spec"]["containers"]
    else:
        yield from obj["spec"]["template"]["spec"]["containers"]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: line {line!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


# ---- Dockerfile ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    """Every ENV key=value of the Dockerfile (later wins)."""
    env: dict[str, str] = {}
    for ins in dockerfile_instructions():
        if ins.keyword == "ENV":
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def exec_form(ins: Instruction) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD as a list."""
    text = ins.args.split("CMD", 1)[1].strip() if ins.keyword == "HEALTHCHECK" else ins.args
    value = yaml.safe_load(text)
    if not isinstance(value, list):
        raise ValueError(f"{ins.keyword} {ins.args!r} is not in exec (JSON list) form")
    return [str(v) for v in value]


# ---- what our code reads -------------------------------------------------------------------
@functools.cache
def python_string_literals() -> frozenset[str]:
    """Every string constant (and f-string head) in our packages' Python sources."""
    found: set[str] = set()
    for package in OUR_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
                elif isinstance(node, ast.JoinedStr) and node.values:
                    head = node.values[0]
                    if isinstance(head, ast.Constant) and isinstance(head.value, str):
                        found.add(head.value + "{}")
    return frozenset(found)


@functools.cache
def script_env_reads() -> frozenset[str]:
    """Variables the deploy scripts expand (``$NAME`` / ``${NAME...}``)."""
    names: set[str] = set()
    for path in OUR_SCRIPTS:
        names.update(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", path.read_text()))
    return frozenset(names)


def _settings_fields(prefix: str) -> set[str]:
    """Fields of the settings model that reads ``<prefix><FIELD>`` variables."""
    if prefix == "DINO_ORCH_":
        from orchestrator.settings import OrchestratorSettings

        return set(OrchestratorSettings.model_fields)
    if prefix == "DINO_API_":
        from api.server.settings import ApiSettings

        return set(ApiSettings.model_fields)
    return set()


def read_by_our_code(name: str) -> bool:
    """True when our Python reads ``name`` (a string literal, or ``<PREFIX><FIELD>`` through a
    settings model's f-string when the field exists) or a deploy script expands it."""
    literals = python_string_literals()
    if name in literals or name in script_env_reads():
        return True
    for prefix in ("DINO_ORCH_", "DINO_API_"):
        if name.startswith(prefix) and prefix + "{}" in literals:
            return name.removeprefix(prefix).lower() in _settings_fields(prefix)
    return False


def _package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _package_text(package: str) -> str:
    """The package's Python sources, concatenated."""
    return "\n".join(p.read_text(errors="replace") for p in _package_root(package).rglob("*.py"))


@functools.cache
def _package_binary_text(package: str) -> str:
    """Its compiled extension (Ray's C++ core reads some variables itself)."""
    parts = [p.read_bytes().decode("latin-1") for p in _package_root(package).glob("_raylet*.so")]
    return "\n".join(parts)


@functools.cache
def _python_help_env() -> str:
    out = subprocess.run([sys.executable, "--help-env"], capture_output=True, text=True)
    return out.stdout


THIRD_PARTY_PREFIXES = {"RAY_": "ray", "MLFLOW_": "mlflow", "AWS_": "botocore"}


def read_by_third_party(name: str) -> str | None:
    """Who reads ``name`` besides us: the installed package whose sources mention it (chosen
    by prefix), CPython (its ``--help-env`` lists it), or None."""
    for prefix, package in THIRD_PARTY_PREFIXES.items():
        if name.startswith(prefix) and (
            name in _package_text(package) or name in _package_binary_text(package)
        ):
            return package
    if name == "DO_NOT_TRACK" and name in _package_text("mlflow"):
        return "mlflow"
    if name.startswith("PYTHON") and re.search(rf"^{name}\b", _python_help_env(), re.M):
        return "python"
    return None


def _env_read_name(node: ast.AST) -> str | None:
    """``X`` of ``os.environ.get("X")``, ``os.getenv("X")`` or ``os.environ["X"]``."""
    if isinstance(node, ast.Call) and node.args:
        func, first = node.func, node.args[0]
        is_get = isinstance(func, ast.Attribute) and (
            (func.attr == "get" and ast.unparse(func.value) == "os.environ")
            or (func.attr == "getenv" and ast.unparse(func.value) == "os")
        )
        if is_get and isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
    return None


@functools.cache
def python_env_reads() -> frozenset[str]:
    """Every environment variable our packages read by a literal name."""
    names: set[str] = set()
    for package in OUR_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                name = _env_read_name(node)
                if name is not None:
                    names.add(name)
    return frozenset(names)
