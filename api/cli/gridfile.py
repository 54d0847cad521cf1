"""``GRID.yaml``: an ablation grid as a file, turned into the ``POST /v1/grids`` body.

Format (every key but ``name`` optional)::

    name: temp-x-crops              # experiment dino/<name> in MLflow
    base_config: synthetic_tiny     # preset under configs/, a YAML path (relative to this
                                    # file, then the working directory), or an inline mapping
    set:                            # dotted fields applied over the base config
      train.epochs: 1
    axes:                           # dotted field -> values; every combination is one job
      loss.teacher_temp: [0.04, 0.07]
      crops.local_number: [2, 6]
    overrides:                      # explicit override sets, crossed with the axes
      - {optim.lr: 0.001}
      - ["optim.lr=0.002"]
    seeds: [0, 1, 2]                # every combination once per train.seed: the summary
                                    # gives mean ± std and n over them (leave out: once)
    evaluations: [knn, attention]   # knn | linear | attention (or eval_knn ...); [] = none
    eval_options:                   # per evaluation: keyword arguments of its runner
      knn: {ks: [10, 20]}           # knn baselines (random init, raw pixels) are scored
                                    # once per grid; knn: {baselines: false} skips them
    priority: 0                     # higher runs first
    resources: {num_cpus: 1}        # per pretraining job; eval_resources for evaluations
    max_attempts: 3
    tags: {team: vision}
    early_stopping:                 # successive halving (leave out: every run to the end)
      metric: knn_top1              # knn_top1 (epoch k-NN, eval.knn_every_epochs) | loss
      rungs: [2, 4]                 # epochs where runs are ranked (or min_epochs x eta^k)
      reduction_factor: 3           # keep the best 1/3 (at least one) at each rung
      min_epochs: 1                 # no run is stopped before this epoch
    reuse: true                     # false: run even what a SUCCEEDED job of yours ran

Only the file's own keys are checked here; the server checks the grid itself (``dino submit
--dry-run`` asks it with ``POST /v1/grids?dry_run=true``), so the CLI and the server can never
disagree, and a typo is reported with its field path before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPO = Path(__file__).resolve().parents[2]
PRESETS_DIR = REPO / "configs"
EVAL_ALIASES = {"knn": "eval_knn", "linear": "eval_linear", "attention": "eval_attention"}


class GridFileError(ValueError):
    """A grid file that cannot be used; the message names the file and the field."""


class GridFile(BaseModel):
    """The keys a GRID.yaml may hold (anything else is an error)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    base_config: dict[str, Any] | str = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    overrides: list[dict[str, Any] | list[str]] = Field(default_factory=list)
    seeds: list[Any] | None = None  # checked by the server (422 naming seeds.<i>)
    evaluations: list[str] | None = None
    evals: list[str] | None = None
    eval_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    priority: int = 0
    resources: dict[str, Any] = Field(default_factory=dict)
    eval_resources: dict[str, Any] | None = None
    max_attempts: int = 3
    tags: dict[str, str] = Field(default_factory=dict)
    early_stopping: dict[str, Any] | None = None  # checked by the server
    reuse: bool = True


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 1}}`` -> ``{"train.epochs": 1}`` (an empty section stays a leaf)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 1}`` -> ``{"train": {"epochs": 1}}``."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise GridFileError(f"set: {key!r} conflicts with the value given for {part!r}")
            node = child
        node[leaf] = value
    return out


def with_set(base: Mapping[str, Any], dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the dotted fields of ``set`` laid over it (sections keep their other
    fields). Done here, on the file's own format, so the client needs nothing of the server's
    config code; the server validates the result."""
    return nest({**flatten(base), **flatten(dotted)})


def find_preset(ref: str, grid_dir: Path) -> Path:
    """A preset name (``synthetic_tiny``) or YAML path, searched next to the grid file, in
    the working directory, then under ``configs/``."""
    names = [ref] if ref.endswith((".yaml", ".yml")) else [f"{ref}.yaml", ref]
    for base in (grid_dir, Path.cwd(), PRESETS_DIR):
        for name in names:
            cand = (base / name).expanduser()
            if cand.is_file():
                return cand
    presets = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    raise GridFileError(
        f"base_config {ref!r}: no such preset or file (looked next to the grid file, in the "
        f"working directory and in {PRESETS_DIR}); presets: {', '.join(presets)}"
    )


def _load_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise GridFileError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {err.object[err.start]:#04x} at "
            f"offset {err.start}): save it as UTF-8"
        ) from None
    except (OSError, yaml.YAMLError) as err:
        raise GridFileError(f"{what} {str(path)!r} cannot be read as YAML: {err}") from None


def _evals(spec: GridFile, path: Path) -> list[str] | None:
    if spec.evaluations is not None and spec.evals is not None:
        raise GridFileError(f"{path}: give either 'evaluations' or 'evals', not both")
    raw = spec.evaluations if spec.evaluations is not None else spec.evals
    if raw is None:
        return None
    return [EVAL_ALIASES.get(e, e) for e in raw]


def grid_body(path: str | Path) -> dict[str, Any]:
    """The JSON body for ``POST /v1/grids`` described by the grid file at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise GridFileError(f"grid file {str(p)!r} does not exist")
    data = _load_yaml(p, "grid file")
    if not isinstance(data, dict):
        raise GridFileError(f"grid file {str(p)!r} must hold a mapping (name, axes, ...)")
    try:
        spec = GridFile.model_validate(data)
    except ValidationError as err:
        lines = [f"  {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise GridFileError(f"grid file {str(p)!r} is invalid:\n" + "\n".join(lines)) from None
    base: dict[str, Any]
    if isinstance(spec.base_config, str):
        preset = find_preset(spec.base_config, p.parent)
        loaded = _load_yaml(preset, "preset")
        if not isinstance(loaded, dict):
            raise GridFileError(f"preset {str(preset)!r} must hold a mapping of sections")
        base = loaded
    else:
        base = spec.base_config
    if spec.set:
        base = with_set(base, spec.set)
    body: dict[str, Any] = {
        "name": spec.name,
        "base_config": base,
        "axes": spec.axes,
        "overrides": spec.overrides,
        "eval_options": {EVAL_ALIASES.get(k, k): v for k, v in spec.eval_options.items()},
        "priority": spec.priority,
        "resources": spec.resources,
        "max_attempts": spec.max_attempts,
        "tags": spec.tags,
    }
    if spec.seeds is not None:
        body["seeds"] = spec.seeds
    if spec.early_stopping is not None:
        body["early_stopping"] = spec.early_stopping
    if not spec.reuse:
        body["reuse"] = False
    evals = _evals(spec, p)
    if evals is not None:
        body["evals"] = evals
    if spec.eval_resources is not None:
        body["eval_resources"] = spec.eval_resources
    return body


def render_errors(source: str, problem: Mapping[str, Any]) -> str:
    """The server's 422 problem document about a grid file, one line per field (paths as the
    file names them: ``axes.optim.lr.1``)."""
    errors = [e for e in problem.get("errors") or [] if isinstance(e, Mapping)]
    if not errors:
        return f"{source} is invalid: {problem.get('detail', '')}"
    lines = [f"{source} is invalid:"]
    for e in errors:
        lines.append(f"  {str(e.get('field', '?')).removeprefix('body.')}: {e.get('message', '')}")
    return "\n".join(lines)
