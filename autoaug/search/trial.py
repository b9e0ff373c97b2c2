"""One search trial inside a Ray worker: rebuild the policy from Optuna's parameters, train, report.

The dataset arrives through Ray's object store (:func:`autoaug.search.cluster.pack`); the trial never sees the
test split. Population based training has its own trial in :mod:`autoaug.search.pbt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from autoaug.search.cluster import node_id, unpack, worker_device
from autoaug.search.space import SearchSpace, is_point
from autoaug.train.trainer import TrainConfig, train


def run_trial(config: dict[str, Any], *, data: dict[str, Any], space: SearchSpace, base: TrainConfig,
              gpu_memory_fraction: float | None = None, points: Sequence[Mapping[str, Any]] = (),
              points_seed: int | None = None) -> None:
    """Ray Tune function trainable: ``config`` holds the flat policy parameters Optuna sampled (and, for a
    re-run of :mod:`autoaug.search.selection`, its ``seed``). A trial of one of the fixed ``points`` (``none``
    and the standards) trains with ``points_seed`` where one is given."""
    from ray import tune

    policy = space.to_policy(config)
    # the sampled trials share the seed: same initialization and batch order, so they differ only by policy; the
    # fixed points train on the selection's first seed, where their run is their selection run, and the selection
    # stage's re-runs carry their own seed (autoaug.search.selection)
    seed = trial_seed(config, base.seed, points, points_seed)
    cfg = replace(base, device=worker_device(gpu_memory_fraction), seed=seed, **space.train_overrides(config))
    node = node_id()
    # a result per validation: ASHA's rungs (time attribute `epoch`) fall on validated epochs (tune._val_every)
    train(cfg, unpack(data), policy, report=lambda m: tune.report({**m, "node_id": node}) if "val_acc" in m else None)


def trial_seed(config: Mapping[str, Any], seed: int, points: Sequence[Mapping[str, Any]] = (),
               points_seed: int | None = None) -> int:
    """The seed a trial of ``config`` trains with: a selection re-run's own, ``points_seed`` for a trial of one of
    the ``points`` where it is given, else the search's ``seed``."""
    if "seed" in config:
        return int(config["seed"])
    if points_seed is not None and any(is_point(config, p) for p in points):
        return points_seed
    return seed


def rerun_trial(config: dict[str, Any], *, candidates: dict[str, dict[str, Any]], **kwargs: Any) -> None:
    """A re-run of :mod:`autoaug.search.selection`: trial ``config["of"]``'s parameters, trained with
    ``config["seed"]``."""
    run_trial({**candidates[config["of"]], "seed": config["seed"]}, **kwargs)
