"""Importing the project changes nothing outside it: no module of ours writes os.environ.

The worker's process environment (telemetry off, short MLflow retries) is applied by the
entry points (:mod:`worker.env`); an import that did it would change every program that
merely imports a module, tests and tools included. Libraries may set their own variables
when imported (torch's inductor does); the probe records who wrote each variable and counts
only writes made by a file of this repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from worker.env import TELEMETRY_OFF

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dino_core", "worker", "orchestrator", "api")

PROBE = """
import importlib, json, os, pkgutil, sys

writes = []
PLUMBING = {{"os.py", "frozen os", "_collections_abc.py", "frozen _collections_abc"}}

class Recorded(type(os.environ)):
    def __setitem__(self, key, value):
        frame = sys._getframe(1)
        while frame.f_code.co_filename.rsplit("/", 1)[-1].strip("<>") in PLUMBING:
            frame = frame.f_back  # os.environ's own methods: the caller is further out
        writes.append((key, frame.f_code.co_filename, frame.f_lineno))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.__setitem__(key, "")
        super().__delitem__(key)

os.environ.__class__ = Recorded
imported = 0
for name in {packages!r}:
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf == "__main__" or info.name.startswith("orchestrator.migrations."):
            continue  # a program, and Alembic's scripts (run by Alembic, not imported)
        importlib.import_module(info.name)
        imported += 1
# the virtual environment may live inside the checkout (.venv): its files are not ours
venv = os.path.join(sys.prefix, "")
ours = [w for w in writes if w[1].startswith({repo!r}) and not w[1].startswith(venv)]
print(json.dumps({{"ours": ours, "imported": imported}}))
"""


def test_importing_every_module_leaves_the_environment_alone() -> None:
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    code = PROBE.format(packages=PACKAGES, repo=str(REPO) + os.sep)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=500
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["imported"] > 100, report
    assert report["ours"] == [], f"importing the project wrote os.environ: {report['ours']}"
