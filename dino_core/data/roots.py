"""Which directories this process may read data sets from, checked where data is opened.

A job server checks a config's ``data.root`` when the job is submitted, but the path may
change before the job runs (a symlink created or swapped inside an allowed directory). So the
worker confines the process (:func:`confined_to`) and :func:`dino_core.data.load_dataset`
resolves the root again (symlinks and ``..`` followed) right before it opens anything, refuses
one outside the allowed roots with :class:`DataRootError`, and opens the *resolved* path. The
directories a loader derives from the root (``<root>/FashionMNIST/raw``, an image file that
is a symlink) are checked the same way (:func:`check_inside`). Outside a confinement (the
library and its CLI on a workstation) nothing is checked.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dino_core.storage import is_remote

_lock = threading.Lock()
_allowed: tuple[Path, ...] | None = None


class DataRootError(ValueError):
    """A data path outside the directories this process may read (or not there at all)."""


def allowed_roots() -> tuple[Path, ...] | None:
    """The resolved allowed roots of the current confinement, None when not confined."""
    return _allowed


@contextmanager
def confined_to(roots: Sequence[str] | None) -> Iterator[None]:
    """Within the block, data may be read only under ``roots`` (None: no confinement)."""
    global _allowed
    if roots is None:
        yield
        return
    resolved = tuple(Path(os.path.realpath(Path(r).expanduser())) for r in roots)
    with _lock:
        before, _allowed = _allowed, resolved
    try:
        yield
    finally:
        with _lock:
            _allowed = before


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _refusal(what: str, raw: str, resolved: Path, roots: tuple[Path, ...]) -> DataRootError:
    allowed = ", ".join(str(r) for r in roots) or "(none)"
    return DataRootError(
        f"{what} {raw!r} resolves to {str(resolved)!r}, outside the allowed data roots "
        f"({allowed}), when the job opens its data (symlinks followed; a path checked at "
        "submit may have changed since): put the data inside them and submit again"
    )


def resolve_root(raw: str, what: str = "data.root") -> str:
    """``raw`` resolved (symlinks followed); under a confinement it must exist and lie inside
    the allowed roots, else :class:`DataRootError`. An object-store URL (``s3://...``) is
    returned unchanged: it has no symlinks to follow, and the submit check confines it to
    ``DINO_DATASET_URIS``."""
    if is_remote(raw):
        return raw
    roots = _allowed
    path = Path(raw).expanduser()
    if roots is None:
        return str(path)
    resolved = Path(os.path.realpath(path))
    if not _inside(resolved, roots):
        raise _refusal(what, raw, resolved, roots)
    if not resolved.is_dir():
        raise DataRootError(f"{what} {raw!r} is not a directory when the job runs ({resolved})")
    return str(resolved)


def check_inside(path: Path, what: str) -> None:
    """Under a confinement, refuse ``path`` (a directory or file a loader is about to read)
    when it resolves outside the allowed roots; without one, do nothing."""
    roots = _allowed
    if roots is None:
        return
    resolved = Path(os.path.realpath(path))
    if not _inside(resolved, roots):
        raise _refusal(what, str(path), resolved, roots)
