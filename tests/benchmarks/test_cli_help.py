"""Every benchmark's command line answers ``--help``: the reproduce-this-figure commands of
the README start there, and argparse formats help strings with ``%`` (a bare ``(%)`` made
``knn_vs_time --help`` crash)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

import benchmarks

COMMANDS = sorted(
    m.name
    for m in pkgutil.iter_modules(benchmarks.__path__)
    if hasattr(importlib.import_module(f"benchmarks.{m.name}"), "main")
)


def test_every_benchmark_with_a_main_is_checked() -> None:
    assert {"knn_vs_time", "recipe_search", "official_step"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_prints_and_exits_zero(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(f"benchmarks.{name}").main()
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out
