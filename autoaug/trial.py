"""One search trial inside a Ray worker: rebuild the policy from Optuna's parameters, train, report.

The dataset arrives through Ray's object store as numpy arrays (zero-copy, shared by all trials on a
node); the trial never sees the test split.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from autoaug.datasets import DatasetSplits
from autoaug.search_space import SearchSpace
from autoaug.train import TrainConfig, train

SPLIT_KEYS = ("train_x", "train_y", "val_x", "val_y")


def pack(data: DatasetSplits) -> dict[str, Any]:
    """The search-visible part of ``data`` as numpy arrays (test left out) for Ray's object store."""
    return {"name": data.name, "classes": data.classes, **{k: getattr(data, k).numpy() for k in SPLIT_KEYS}}


def unpack(packed: dict[str, Any]) -> DatasetSplits:
    """Tensors that share the (read-only) object-store memory; training only ever indexes them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        arrays = {k: torch.from_numpy(np.asarray(packed[k])) for k in SPLIT_KEYS}
    empty_x = arrays["val_x"][:0]
    return DatasetSplits(name=packed["name"], classes=tuple(packed["classes"]), test_x=empty_x,
                         test_y=arrays["val_y"][:0], **arrays)


def _device(gpu_memory_fraction: float | None) -> str:
    """The GPU Ray assigned to this trial (with a memory cap, as fractional GPUs share one card), or CPU."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    if not gpu_ids or not torch.cuda.is_available():
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    index = visible.split(",").index(str(gpu_ids[0])) if str(gpu_ids[0]) in visible.split(",") else 0
    if gpu_memory_fraction is not None:
        torch.cuda.set_per_process_memory_fraction(gpu_memory_fraction, index)
    return f"cuda:{index}"


def run_trial(config: dict[str, Any], *, data: dict[str, Any], space: SearchSpace, base: TrainConfig,
              gpu_memory_fraction: float | None = None) -> None:
    """Ray Tune function trainable: ``config`` holds the flat policy parameters Optuna sampled."""
    from ray import tune

    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    torch.set_num_threads(max(1, threads))
    policy = space.to_policy(config)
    # every trial shares the seed: same initialization and batch order, so trials differ only by policy
    cfg = replace(base, device=_device(gpu_memory_fraction), **space.train_overrides(config))
    train(cfg, unpack(data), policy, report=lambda m: tune.report(m))
