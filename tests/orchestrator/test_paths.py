"""Where a request's data.root may point: local roots, or URLs under DINO_DATASET_URIS."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.paths import outside_roots


def test_a_url_root_must_lie_under_a_configured_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DINO_DATASET_URIS", raising=False)
    refused = outside_roots("s3://dino/datasets/fm", [tmp_path], "config.data.root", "data.root")
    assert refused is not None and "DINO_DATASET_URIS" in refused.message
    assert refused.field == "config.data.root" and "none configured" in refused.message
    monkeypatch.setenv("DINO_DATASET_URIS", "s3://dino/datasets/, s3://archive")
    for ok in ("s3://dino/datasets/fm", "s3://dino/datasets", "s3://archive/x/y"):
        assert outside_roots(ok, [tmp_path], "f", "data.root") is None, ok
    for bad in ("s3://dino/datasets2", "s3://dino/datasets/../jobs", "s3://other/x", "file:///x"):
        error = outside_roots(bad, [tmp_path], "f", "data.root")
        assert error is not None and error.type == "path_outside_roots", bad
    (tmp_path / "d").mkdir()  # local roots keep their rule: an existing directory inside
    assert outside_roots(str(tmp_path / "d"), [tmp_path], "f", "data.root") is None
