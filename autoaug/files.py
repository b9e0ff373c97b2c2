"""Files that are whole or absent: every result autoaug writes goes through :func:`atomic`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without error it replaces ``path`` in one
    step, so a reader sees the old file or the new one, never half of one. On error the temporary file goes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """``Path(path).write_text(text)``, atomically."""
    with atomic(path) as tmp:
        tmp.write_text(text)
