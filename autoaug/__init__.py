"""autoaug: find data-augmentation policies for image classifiers.

Heavy dependencies (torch, ray, mlflow) load lazily: ``import autoaug`` stays cheap and the public names
below resolve on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "AutoaugError": "autoaug.errors",
    "Policy": "autoaug.policy",
    "OpConfig": "autoaug.policy",
    "Augmenter": "autoaug.augment",
    "load_dataset": "autoaug.datasets",
    "DatasetSplits": "autoaug.datasets",
    "TrainConfig": "autoaug.train",
    "train": "autoaug.train",
    "evaluate": "autoaug.train",
    "tune_policy": "autoaug.tune",
    "SearchResult": "autoaug.tune",
    "make_report": "autoaug.report",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autoaug' has no attribute {name!r}")
