"""Data: named dataset sources decoded once into uint8 tensors and cached, the train/val/test splits, and the
small generative models that make synthetic images. The embedded ``.npz`` datasets live in this folder."""

from __future__ import annotations

from autoaug.lazy import attach

__getattr__, __dir__ = attach(__name__, {
    "DEFAULT_DATASET": "names", "GENERATORS": "names",
    "DatasetSplits": "datasets", "load_dataset": "datasets", "describe_sources": "datasets",
    "folder_name": "sources", "reduce_train": "datasets",
    "generator_for": "synthetic",
})
__all__ = __dir__()
