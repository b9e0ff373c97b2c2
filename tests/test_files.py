"""Result files are whole or absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoaug.files import atomic, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "search.json"
    write_text(path, "old")
    with pytest.raises(RuntimeError), atomic(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["search.json"]
    write_text(path, "new")
    assert path.read_text() == "new" and len(list(tmp_path.iterdir())) == 1
