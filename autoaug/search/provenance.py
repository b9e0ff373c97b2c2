"""Where a run's code and data came from, as MLflow's users read it: the git commit of the working folder's
repository (MLflow's ``mlflow.source.git.commit``) and the dataset as a run input (name, splits, sizes, digest)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from typing import Any

from autoaug.data.datasets import DatasetSplits


def code_tags(folder: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """MLflow's source tags for a run started in ``folder`` (default: the working folder): autoaug as its source
    (which the UI shows with the commit), the commit of the git repository it lies in (none outside a repository),
    and autoaug's version."""
    from importlib.metadata import version

    tags = {"autoaug.version": version("autoaug"), "mlflow.source.name": "autoaug", "mlflow.source.type": "LOCAL"}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return tags
    if commit.returncode == 0 and commit.stdout.strip():
        tags["mlflow.source.git.commit"] = commit.stdout.strip()
    return tags


def digest(data: DatasetSplits) -> str:
    """A digest of every split's images and labels (16 hex digits): the same digest means the same data."""
    h = hashlib.sha256()
    for t in (data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def dataset_input(data: DatasetSplits) -> dict[str, Any]:
    """The fields of an MLflow dataset input for ``data``: its name, digest, source and a profile of its splits."""
    c, h, w = data.image_shape
    profile = {"train": len(data.train_y), "val": len(data.val_y), "test": len(data.test_y),
               "image_shape": [c, h, w], "classes": len(data.classes)}
    return {"name": data.name, "digest": digest(data), "source_type": "autoaug",
            "source": json.dumps({"dataset": data.name}), "profile": json.dumps(profile)}
