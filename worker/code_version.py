"""The version of the code that runs a job: recorded on its MLflow run and, with its
resolved config, what identifies a run that can be reused (:mod:`orchestrator.reuse`)."""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path


@functools.cache
def code_version() -> str:
    """Git commit of the checkout holding this package, else the installed package version."""
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            sha = out.stdout.strip()
            if out.returncode == 0 and len(sha) == 40:
                return sha
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return importlib.metadata.version("dino-orchestrator")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
