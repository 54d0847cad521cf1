"""The client commands of ``dino`` load neither the server's layers nor the method.

``dino submit`` / ``jobs`` / ``grid`` talk to the server over HTTP only: importing them (and
running one of them) in a fresh interpreter must leave ``orchestrator``, ``dino_core`` and
``torch`` unimported, so the client starts fast and installs anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.orchestrator.raynodes import REPO

FORBIDDEN = ("orchestrator", "dino_core", "torch", "api.server")
CLIENT_MODULES = ("api.cli.client", "api.cli.commands", "api.cli.gridfile", "api.cli.watch")

PROBE = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
from api.cli.main import main
sys.argv = ["dino", "submit", "--help"]
try:
    main()
except SystemExit:
    pass
loaded = sorted(
    m for m in sys.modules for f in {forbidden!r} if m == f or m.startswith(f + ".")
)
print(json.dumps(loaded))
"""


def test_client_commands_import_no_server_layer_nor_torch() -> None:
    code = PROBE.format(modules=CLIENT_MODULES, forbidden=FORBIDDEN)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the dino client imported {loaded}"


def test_dino_help_still_lists_the_method_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    listed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("│ ")}
    assert {"train", "eval", "submit", "serve", "token"} <= listed, out.stdout
