"""The run directory's plain-file record: ``config.yaml`` and ``metrics.jsonl``.

Written on rank 0 only. ``metrics.jsonl`` holds one JSON object per step; on resume the lines
after the restored step are dropped so the file never holds a step twice. Remote
``output_dir`` URIs (s3://…) get ``config.yaml`` but no ``metrics.jsonl`` (object stores cannot
append): there, the tracking backend is the record.
"""

from __future__ import annotations

import json
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from dino_core.config import DinoConfig
from dino_core.storage import filesystem, join, publish


def write_config(output_dir: str, cfg: DinoConfig) -> None:
    publish(join(output_dir, "config.yaml"), cfg.to_yaml().encode())


class MetricsFile:
    def __init__(self, output_dir: str, enabled: bool = True) -> None:
        fs, p = filesystem(output_dir)
        self.path: Path | None = None
        if enabled and isinstance(fs, LocalFileSystem):
            Path(p).mkdir(parents=True, exist_ok=True)
            self.path = Path(p) / "metrics.jsonl"

    def truncate_after(self, step: int) -> None:
        """Keep only records with ``step <= step`` (resume after a crash)."""
        if self.path is None or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError):
                continue  # a line cut by the crash
        self.path.write_text("".join(k + "\n" for k in kept))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")


def read_metrics(output_dir: str) -> list[dict[str, float]]:
    """All records of ``metrics.jsonl`` (empty when absent)."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
