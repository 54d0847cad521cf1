"""One orchestrator with its own local Ray per DINO_HOME: the lock itself (the process-level
refusal and the kill -9 of ``dino serve`` are in tests/api/cli/test_serve.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.home_lock import LOCK_NAME, LocalRayLockedError, lock_local_ray


def test_a_second_lock_on_one_home_is_refused_naming_the_holder(tmp_path: Path) -> None:
    home = tmp_path / "home"  # created by the lock
    first = lock_local_ray(home)
    assert (home / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    with pytest.raises(LocalRayLockedError, match=rf"pid {os.getpid()}\).*DINO_HOME={home}"):
        lock_local_ray(home)
    other = lock_local_ray(tmp_path / "other")  # another home is another lock
    first.release()
    first.release()  # twice is harmless
    again = lock_local_ray(home)  # released: free to take
    again.release()
    other.release()
