"""Explicit seeds: one root seed, everything else derived from it by name."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(root: int, *keys: object) -> int:
    """A 63-bit seed that depends only on ``root`` and ``keys`` (stable across processes and runs)."""
    text = "/".join([str(int(root)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
