"""Checkpoints on an S3-compatible endpoint (moto's server on 127.0.0.1): published whole,
listed across processes, pruned, and a partial object never taken for a checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from dino_core.checkpoint import list_checkpoints, load_latest, save_checkpoint
from dino_core.storage import filesystem
from tests.s3server import S3Server, s3_server

__all__ = ["s3_server"]

REPO = Path(__file__).resolve().parents[2]


def _state(step: int) -> dict[str, object]:
    return {"step": step, "weights": torch.full((4,), float(step))}


def test_checkpoints_are_published_listed_and_pruned(s3_server: S3Server) -> None:
    out = s3_server.url("runs", "prune")
    paths = [save_checkpoint(_state(s), out, s, keep=2) for s in (3, 6, 9)]
    assert paths[-1] == f"{out}/checkpoints/checkpoint-00000009.pt"
    assert list_checkpoints(out) == paths[1:]
    fs, prefix = filesystem(out)
    keys = sorted(fs.find(prefix))
    assert keys == [p.removeprefix("s3://") for p in paths[1:]], "no temporary or pruned keys"
    found = load_latest(out)
    assert found is not None and found[0] == paths[-1]
    assert torch.equal(found[1]["weights"], torch.full((4,), 9.0))


def test_a_partial_object_under_a_checkpoint_name_is_skipped(s3_server: S3Server) -> None:
    out = s3_server.url("runs", "partial")
    good = save_checkpoint(_state(4), out, 4, keep=3)
    fs, _ = filesystem(good)
    whole = fs.cat_file(good)
    # what a writer that streams to the final key would leave after a kill
    fs.pipe_file(good.replace("00000004", "00000008"), whole[: len(whole) // 2])
    found = load_latest(out)
    assert found is not None and found[0] == good


def test_a_checkpoint_written_by_another_process_is_seen(s3_server: S3Server) -> None:
    out = s3_server.url("runs", "other-process")
    save_checkpoint(_state(1), out, 1, keep=5)
    assert len(list_checkpoints(out)) == 1  # this process has listed the prefix once
    code = (
        "import sys, torch; from dino_core.checkpoint import save_checkpoint; "
        "save_checkpoint({'step': 2, 'weights': torch.zeros(1)}, sys.argv[1], 2, keep=5)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code, out], env=env, check=True)
    assert [p.rsplit("-", 1)[-1] for p in list_checkpoints(out)] == ["00000001.pt", "00000002.pt"]
