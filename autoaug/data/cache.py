"""The disk cache of decoded sources (``$AUTOAUG_CACHE``, default ``~/.cache/autoaug``): each written atomically
once, and read back on every later load."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from autoaug.data.sources import RawData
from autoaug.files import atomic


def cache_dir() -> Path:
    return Path(os.environ.get("AUTOAUG_CACHE", Path.home() / ".cache" / "autoaug")).expanduser().resolve()


def tree_fingerprint(path: Path) -> str:
    h = hashlib.sha256(str(path.resolve()).encode())
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached(key: str, build: Callable[[], RawData]) -> RawData:
    """Load ``key`` from the disk cache, or build it and write it atomically (never a half-written file)."""
    file = cache_dir() / f"{key}.pt"
    if file.exists():
        try:
            d = torch.load(file, weights_only=True)
            return RawData(d["train_x"], d["train_y"], d["test_x"], d["test_y"], tuple(d["classes"]), d.get("note", ""))
        except Exception:
            file.unlink(missing_ok=True)
    raw = build()
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic(file) as tmp:
        torch.save({**{k: getattr(raw, k) for k in ("train_x", "train_y", "test_x", "test_y")},
                    "classes": list(raw.classes), "note": raw.note}, tmp)
    return raw
