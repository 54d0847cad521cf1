"""The README's library example runs as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_library_example_runs(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python example"
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "synthetic_tiny.yaml", tmp_path / "configs")
    (tmp_path / "example.py").write_text(blocks[0])
    out = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env={
            "PYTHONPATH": str(REPO),
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "2",
            "DINO_DATA_DOWNLOAD": "0",
        },
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SUCCEEDED 16" in out.stdout
    assert "knn_top1_k20_random_init" in out.stdout
