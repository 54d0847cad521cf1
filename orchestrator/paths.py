"""Confining the file paths a request names to configured roots.

A config's ``data.root`` must resolve (symlinks and ``..`` followed, no file opened) to an
existing directory inside one of the dataset roots (``DINO_DATASET_ROOTS``), or, as a URL (a
shard set on ``s3://...``), lie under one of the URL prefixes of ``DINO_DATASET_URIS``
(comma-separated, none by default); an evaluation's ``source_checkpoint`` must lie inside the
directory of one of the caller's jobs in the job storage (:func:`checkpoint_job` finds which).
Nothing here reads these paths: the service layer only refuses to queue a job that would make
a worker read outside them, and the worker checks data roots again where it opens the data
(``dino_core.data.roots``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from orchestrator.errors import FieldError

MAX_PATH_CHARS = 4096


def dataset_uri_prefixes() -> tuple[str, ...]:
    """``DINO_DATASET_URIS``: the URL prefixes a ``data.root`` URL may lie under."""
    raw = os.environ.get("DINO_DATASET_URIS", "")
    return tuple(p.strip().rstrip("/") for p in raw.split(",") if "://" in p)


def _uri_outside(raw: str, field: str, what: str) -> FieldError | None:
    prefixes = dataset_uri_prefixes()
    inside = any(raw.rstrip("/") == p or raw.startswith(p + "/") for p in prefixes)
    if inside and ".." not in raw.split("/"):
        return None
    allowed = ", ".join(prefixes) or "none configured"
    return FieldError(
        field=field,
        message=(
            f"{what} {raw!r} is a URL outside the allowed data set URLs ({allowed}): use a "
            "local directory, or ask the operator to add its prefix to DINO_DATASET_URIS"
        ),
        type="path_outside_roots",
    )


def _resolve(raw: str) -> Path | str:
    """The resolved absolute path, or why it cannot be one."""
    if len(raw) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if "\x00" in raw:
        return "contains a NUL character"
    path = Path(raw).expanduser()
    if not path.is_absolute():
        return "must be an absolute path (workers run in other directories)"
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError) as err:
        return f"cannot be resolved ({err})"


def outside_roots(
    raw: str, roots: Sequence[Path], field: str, what: str, *, must_exist: bool = True
) -> FieldError | None:
    """None when ``raw`` resolves inside one of ``roots`` (and, with ``must_exist``, is a
    directory) or is a URL under a prefix of ``DINO_DATASET_URIS``; else the error for
    ``field``."""
    if "://" in raw and len(raw) <= MAX_PATH_CHARS and "\x00" not in raw:
        return _uri_outside(raw, field, what)
    resolved = _resolve(raw)
    if isinstance(resolved, str):
        return FieldError(field=field, message=f"{what} {raw!r} {resolved}", type="path")
    if any(resolved == r or resolved.is_relative_to(r) for r in roots):
        if must_exist and not resolved.is_dir():
            return FieldError(
                field=field,
                message=f"{what} {raw!r} is not an existing directory: create it (with the "
                "data set in it) before submitting",
                type="path_not_found",
            )
        return None
    allowed = ", ".join(str(r) for r in roots) or "(none configured)"
    return FieldError(
        field=field,
        message=(
            f"{what} {raw!r} resolves to {str(resolved)!r}, outside the allowed roots "
            f"({allowed}): put the data under one of them, or ask the operator to add its "
            "directory to DINO_DATASET_ROOTS"
        ),
        type="path_outside_roots",
    )


def checkpoint_job(raw: str, storage_root: str, field: str) -> tuple[str, FieldError | None]:
    """The id of the job whose directory ``raw`` lies in (``<storage_root>/<job id>/...``),
    or the error for ``field`` when it lies in none (local path or URI prefix)."""
    refused = FieldError(
        field=field,
        message=f"checkpoint {raw!r} must lie in the directory of one of your jobs under the "
        f"job storage {storage_root!r}: name the job instead (source_job), or use the "
        "checkpoint_uri of one of your pretraining jobs",
        type="path_outside_roots",
    )
    if "://" in storage_root and not storage_root.startswith("file://"):
        prefix = storage_root.rstrip("/") + "/"
        if not raw.startswith(prefix) or ".." in raw.split("/"):
            return "", refused
        parts = raw.removeprefix(prefix).split("/")
    else:
        root = Path(os.path.realpath(Path(storage_root.removeprefix("file://")).expanduser()))
        error = outside_roots(
            raw.removeprefix("file://"), [root], field, "checkpoint", must_exist=False
        )
        if error is not None:
            return "", refused if error.type == "path_outside_roots" else error
        resolved = _resolve(raw.removeprefix("file://"))
        assert isinstance(resolved, Path)  # outside_roots resolved it
        parts = list(resolved.relative_to(root).parts)
    if len(parts) < 2 or not parts[0]:
        return "", refused
    return parts[0], None
