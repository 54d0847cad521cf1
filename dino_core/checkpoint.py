"""Checkpoints: full training state, written atomically, loadable with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (no pickled
objects), so ``torch.load(weights_only=True)`` reads it. Files are
``<output_dir>/checkpoints/checkpoint-<step:08d>.pt``; ``output_dir`` may be a local path or
any fsspec URI (``s3://…``, opened by :mod:`dino_core.storage`). A checkpoint is published
whole (:func:`dino_core.storage.publish`: temporary name + rename on a disk, one ``PUT`` of
the final key on an object store), so a crash never leaves a partial file under a checkpoint
name; only the last K are kept.
"""

from __future__ import annotations

import io
import logging
import random
import re
from typing import Any

import numpy as np
import torch

from dino_core.storage import as_url, filesystem, publish

FORMAT = "dino-orchestrator/1"
_NAME = re.compile(r"checkpoint-(\d{8})\.pt$")
log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file."""


def checkpoint_dir(output_dir: str) -> str:
    return output_dir.rstrip("/") + "/checkpoints"


def checkpoint_step(path: str) -> int:
    """The step of a checkpoint from its file name (``checkpoint-<step:08d>.pt``), unread."""
    m = _NAME.search(path)
    if m is None:
        raise ValueError(f"{path}: not a checkpoint name (expected checkpoint-<8 digits>.pt)")
    return int(m.group(1))


def list_checkpoints(output_dir: str) -> list[str]:
    """Checkpoint paths in ``output_dir``, oldest step first."""
    d = checkpoint_dir(output_dir)
    fs, p = filesystem(d)
    if not fs.exists(p):
        return []
    found = []
    for name in fs.ls(p, detail=False):
        if _NAME.search(str(name)):
            found.append((checkpoint_step(str(name)), as_url(fs, str(name), d)))
    return [path for _, path in sorted(found)]


def save_checkpoint(state: dict[str, Any], output_dir: str, step: int, keep: int) -> str:
    """Write ``state`` as the checkpoint of ``step`` atomically; prune to the last ``keep``."""
    final = f"{checkpoint_dir(output_dir)}/checkpoint-{step:08d}.pt"
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    publish(final, buf.getvalue())
    for old in list_checkpoints(output_dir)[:-keep]:
        ofs, op = filesystem(old)
        ofs.rm(op)
    fs, p = filesystem(final)
    return as_url(fs, p, final)


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read one checkpoint with ``weights_only=True``; a bad file raises CheckpointError."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        with fs.open(p, "rb") as f:
            data = f.read()
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, …
        raise CheckpointError(
            f"checkpoint {path!r} is corrupt or truncated ({type(err).__name__}: {err}); "
            "delete it to fall back to the previous one"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path!r} is not a {FORMAT} checkpoint")
    return obj


def load_latest(output_dir: str) -> tuple[str, dict[str, Any]] | None:
    """Newest readable checkpoint; corrupt newer ones are skipped with a warning."""
    for path in reversed(list_checkpoints(output_dir)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as err:
            log.warning("%s; using the previous checkpoint", err)
    return None


def latest_checkpoint(output_dir: str) -> str | None:
    found = load_latest(output_dir)
    return found[0] if found else None


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors/numbers (weights_only-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
