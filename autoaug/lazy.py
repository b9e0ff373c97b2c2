"""Lazy public faces: a package names its public objects and their modules; a module loads on first use.

``import autoaug`` (and ``autoaug --help``) stays cheap while ``from autoaug.search import tune_policy`` works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def attach(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each public name of ``names`` resolves from its module
    (relative to ``package``, e.g. ``{"Policy": "policy"}``) on first access."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
