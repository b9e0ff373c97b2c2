"""One search trial inside a Ray worker: rebuild the policy from Optuna's parameters, train, report.

The dataset arrives through Ray's object store (:func:`autoaug.search.cluster.pack`); the trial never sees the
test split. Population based training has its own trial in :mod:`autoaug.search.pbt`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autoaug.search.cluster import node_id, unpack, worker_device
from autoaug.search.space import SearchSpace
from autoaug.train.trainer import TrainConfig, train


def run_trial(config: dict[str, Any], *, data: dict[str, Any], space: SearchSpace, base: TrainConfig,
              gpu_memory_fraction: float | None = None) -> None:
    """Ray Tune function trainable: ``config`` holds the flat policy parameters Optuna sampled (and, for a
    re-run of :mod:`autoaug.search.selection`, its ``seed``)."""
    from ray import tune

    policy = space.to_policy(config)
    # every trial shares the seed: same initialization and batch order, so trials differ only by policy; the
    # selection stage's re-runs carry their own (autoaug.search.selection)
    cfg = replace(base, device=worker_device(gpu_memory_fraction), seed=int(config.get("seed", base.seed)),
                  **space.train_overrides(config))
    node = node_id()
    # a result per validation: ASHA's rungs (time attribute `epoch`) fall on validated epochs (tune._val_every)
    train(cfg, unpack(data), policy, report=lambda m: tune.report({**m, "node_id": node}) if "val_acc" in m else None)


def rerun_trial(config: dict[str, Any], *, candidates: dict[str, dict[str, Any]], **kwargs: Any) -> None:
    """A re-run of :mod:`autoaug.search.selection`: trial ``config["of"]``'s parameters, trained with
    ``config["seed"]``."""
    run_trial({**candidates[config["of"]], "seed": config["seed"]}, **kwargs)
