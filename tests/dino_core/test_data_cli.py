"""``dino data shard SRC DEST``: an image folder into shards that ``data.dataset: shards``
reads, one-line errors for bad input, and the command mounted on the ``dino`` app."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from dino_core.config import DataConfig
from dino_core.data import load_dataset
from dino_core.data_cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_dino_data_shard_writes_a_readable_shard_set(tmp_path: Path) -> None:
    src = tmp_path / "images"
    for cls in ("a", "b"):
        (src / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(src / cls / f"{i}.png")
    dest = tmp_path / "shards"
    out = runner.invoke(app, ["shard", str(src), str(dest), "--shard-size", "4"])
    assert out.exit_code == 0, out.output
    assert f"{dest}/train: 6 images in 2 shards, 2 classes" in out.output
    ds = load_dataset(DataConfig(dataset="shards", root=str(dest)), "train")
    assert len(ds) == 6 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_bad_input_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["shard", str(tmp_path / "nope"), str(tmp_path / "o")])
    assert missing.exit_code == 1 and "is not a directory" in missing.output
    assert "Traceback" not in missing.output
    wrong = runner.invoke(app, ["shard", "x", "y", "--dataset", "imagenet"])
    assert wrong.exit_code == 2 and "choose one of" in wrong.output


def test_the_dino_command_has_data_shard() -> None:
    """Through the ``dino`` entry point that pyproject.toml installs."""
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["dino"]
    module, func = target.split(":")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", f"from {module} import {func}; {func}()", "data", "shard", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "SRC" in out.stdout and "--shard-size" in out.stdout
