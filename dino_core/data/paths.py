"""Where data sets are looked for, and whether a download may be tried.

Environment:
- ``DINO_DATA_DIR``: a directory holding data sets (``$DINO_DATA_DIR/<name>`` or directly).
- ``DINO_DATA_DOWNLOAD``: ``0``/``false``/``no`` forbids torchvision downloads (offline
  clusters, tests); anything else allows them as the last resort.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from dino_core.data.roots import check_inside

SYSTEM_DATASETS = Path("/usr/share/datasets")


def data_dir_env() -> Path | None:
    """``$DINO_DATA_DIR`` when set and non-empty."""
    value = os.environ.get("DINO_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def downloads_allowed() -> bool:
    """False when ``DINO_DATA_DOWNLOAD`` is 0/false/no."""
    return os.environ.get("DINO_DATA_DOWNLOAD", "1").strip().lower() not in ("0", "false", "no")


def download_root(root: str | None) -> Path:
    """Download target: ``data.root``, else ``$DINO_DATA_DIR``, else ``~/.cache/dino/data``."""
    if root:
        return Path(root).expanduser()
    env = data_dir_env()
    if env is not None:
        return env
    return Path.home() / ".cache" / "dino" / "data"


def candidate_dirs(root: str | None, subdirs: Iterable[str], system_name: str) -> list[Path]:
    """The search order: ``data.root`` (and its ``subdirs``), ``$DINO_DATA_DIR/<subdir>``,
    ``$DINO_DATA_DIR``, then ``/usr/share/datasets/<system_name>``; duplicates removed.
    Under a confinement, an existing directory below ``data.root`` must resolve inside it
    (:func:`dino_core.data.roots.check_inside`)."""
    subs = list(subdirs)
    out: list[Path] = []
    if root:
        base = Path(root).expanduser()
        out += [base, *(base / s for s in subs)]
        for sub in out[1:]:
            if sub.exists():
                check_inside(sub, "a directory under data.root")
    env = data_dir_env()
    if env is not None:
        out += [*(env / s for s in subs), env]
    out.append(SYSTEM_DATASETS / system_name)
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def find_shared_dir(relative: str) -> Path | None:
    """Walk up from this package looking for ``<ancestor>/<relative>`` (e.g. the repo's
    ``shared/data/mnist-t10k`` next to the checkout or clone)."""
    for parent in Path(__file__).resolve().parents:
        cand = parent / relative
        if cand.is_dir():
            return cand
    return None


def format_places(places: Iterable[tuple[Path | str, str]]) -> str:
    """Bullet list ``  - <place>: <what happened>`` for error messages."""
    return "\n".join(f"  - {p}: {why}" for p, why in places)
