"""autoaug: find data-augmentation policies for image classifiers.

Heavy dependencies (torch, ray, mlflow) load lazily: ``import autoaug`` stays cheap and the public names
below resolve on first use. The package is five wings, bottom-up: ``data``, ``augment``, ``train``, ``search``,
``report`` (each imports only the wings below it and the helpers ``errors``, ``files``, ``seeding``,
``progress``, ``stats`` and ``lazy``); ``cli`` sits on top.
"""

from __future__ import annotations

from autoaug.lazy import attach

__version__ = "0.1.0"

__getattr__, _names = attach(__name__, {
    "AutoaugError": "errors",
    "Policy": "augment", "OpConfig": "augment", "Augmenter": "augment", "to_torchvision": "augment",
    "load_dataset": "data", "DatasetSplits": "data",
    "TrainConfig": "train", "evaluate": "train",
    "tune_policy": "search", "SearchResult": "search",
    "make_report": "report",
})
__all__ = ["__version__", *_names()]


def __dir__() -> list[str]:
    return __all__
