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


def canonical_device(device: torch.device | str) -> torch.device:
    """``device`` as generators and tensors report it: ``cuda`` becomes ``cuda:<current>``, ``cpu:0`` ``cpu``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if device.type == "cpu":
        return torch.device("cpu")
    return device
