"""The CLI's saved bearer token: ``<DINO_HOME>/token``, written by ``dino token create --save``
(mode 600) and read by every client command when ``DINO_TOKEN`` is unset."""

from __future__ import annotations

import os
from pathlib import Path

from worker.deployment import dino_home


def token_file(home: Path | None = None) -> Path:
    """``<home>/token`` (default: ``DINO_HOME``)."""
    return (home if home is not None else dino_home()) / "token"


def save_token(token: str, path: Path) -> None:
    """Write ``token`` readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    path.chmod(0o600)


def read_token() -> str | None:
    """``DINO_TOKEN``, else the saved token file, else None."""
    token = os.environ.get("DINO_TOKEN", "").strip()
    if token:
        return token
    path = token_file()
    if path.is_file():
        return path.read_text().strip() or None
    return None
