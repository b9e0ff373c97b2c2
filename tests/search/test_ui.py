"""``autoaug ui``: which store it opens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from autoaug.errors import AutoaugError
from autoaug.search.tracking import store_of


def _search(root: Path, name: str, run_id: str, uri: str, mtime: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "mlflow.json").write_text(json.dumps({"parent_run_id": run_id, "tracking_uri": uri}))
    os.utime(folder / "mlflow.json", (mtime, mtime))
    return folder


def test_ui_opens_the_store_a_search_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "autoaug-runs"
    old = _search(runs, "a-1", "a" * 32, "sqlite:////elsewhere/mlflow.db", 1_000)
    _search(runs, "b-2", "b" * 32, "http://127.0.0.1:5001", 2_000)
    assert store_of(str(old), runs) == ("sqlite:////elsewhere/mlflow.db", f"the store of the search in {old}")
    assert store_of("a" * 32, runs)[0] == "sqlite:////elsewhere/mlflow.db"
    uri, why = store_of(None, runs)
    assert uri == "http://127.0.0.1:5001" and "latest search here, b-2" in why
    monkeypatch.chdir(tmp_path)
    uri, why = store_of(None, tmp_path / "nothing")
    assert uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}" and "default store" in why
    with pytest.raises(AutoaugError, match="is neither a search folder nor the MLflow run of a search"):
        store_of("c" * 32, runs)
    with pytest.raises(AutoaugError, match="is not a tracked search folder"):
        store_of(str(tmp_path), runs)
