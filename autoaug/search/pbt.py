"""Population based augmentation: Ray Tune's PBT changes op magnitudes and probabilities during training.

Every trial starts from a random point of the search space with a constant schedule. Every tenth of
training, once the whole population has got there (synchronous PBT: its decisions do not depend on which
trial happens to run first), PBT replaces the bottom quarter of the population with copies of the top
quarter (weights and all, through checkpoints) and perturbs their parameters (x0.8 / x1.2, or a fresh
draw with probability 1/4), clipped to the space's ranges. A checkpoint carries the lineage's settings
as ``stages``; the best trial's are exported as a policy with stages (:func:`replay_policy`) that
replays them epoch by epoch.
"""

from __future__ import annotations

import functools
import random
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from autoaug.augment.policy import Policy
from autoaug.search.cluster import unpack, worker_device
from autoaug.search.space import SearchSpace
from autoaug.train.trainer import TrainConfig, Trainer

STATE_FILE = "state.pt"
Stages = list[tuple[int, dict[str, Any]]]


class FinishingPBT(PopulationBasedTraining):
    """PBT that leaves a trial alone at its last epoch (an exploit there would only copy another trial)."""

    def __init__(self, *, epochs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epochs = epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("epoch", 0) >= self.epochs:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def domains(space: SearchSpace) -> dict[str, Any]:
    """Ray Tune domains for every op probability and magnitude of ``space``."""
    out = {}
    for op, r in space.ops.items():
        out[f"{op}.p"] = tune.uniform(*r.probability)
        if r.magnitude is not None:
            out[f"{op}.m"] = tune.uniform(*r.magnitude)
    return out


def clip_to_space(space: SearchSpace, config: dict[str, Any]) -> dict[str, Any]:
    """PBT's explore step multiplies values by 0.8 or 1.2; keep them inside the space's ranges."""
    for op, r in space.ops.items():
        config[f"{op}.p"] = min(max(config[f"{op}.p"], r.probability[0]), r.probability[1])
        if r.magnitude is not None:
            config[f"{op}.m"] = min(max(config[f"{op}.m"], r.magnitude[0]), r.magnitude[1])
    return config


def interval(epochs: int) -> int:
    """Epochs between perturbations: a tenth of training."""
    return max(1, epochs // 10)


def scheduler(space: SearchSpace, epochs: int, seed: int) -> tuple[FinishingPBT, dict[str, Any]]:
    """The PBT scheduler and the population's parameter space (constant schedule: PBT makes its own)."""
    random.seed(seed)  # PBT draws its exploit and explore choices from `random`
    mutations = domains(space)
    pbt = FinishingPBT(epochs=epochs, time_attr="training_iteration", perturbation_interval=interval(epochs),
                       hyperparam_mutations=mutations, quantile_fraction=0.25, resample_probability=0.25,
                       custom_explore_fn=functools.partial(clip_to_space, space), synch=True)
    return pbt, {**mutations, "schedule": "constant"}


def run_pbt_trial(config: dict[str, Any], *, data: dict[str, Any], space: SearchSpace, base: TrainConfig,
                  gpu_memory_fraction: float | None = None) -> None:
    """Ray Tune trainable: resumes from the checkpoint PBT hands over (its own, or the better trial's it
    cloned), trains with ``config``'s policy and reports a checkpoint at each perturbation and at the end."""
    policy = space.to_policy(config)
    cfg = replace(base, device=worker_device(gpu_memory_fraction), **space.train_overrides(config))
    trainer = Trainer(cfg, unpack(data), policy)
    stages: Stages = []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, map_location=trainer.device)
        trainer.load_state_dict(state)
        stages = [(int(e), ops) for e, ops in state["stages"] if e < trainer.epoch]
    ops = policy.to_dict()["ops"]
    if not stages or stages[-1][1] != ops:
        stages.append((trainer.epoch, ops))
    while trainer.epoch < cfg.epochs:
        metrics = trainer.run_epoch()
        if trainer.epoch % interval(cfg.epochs) and trainer.epoch < cfg.epochs:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as folder:
            torch.save({**trainer.state_dict(), "stages": stages}, Path(folder) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def replay_policy(stages: Stages, epochs: int, name: str) -> Policy:
    """The policy that replays a lineage's ``stages`` (``[(epoch, ops), ...]``) over ``epochs`` epochs."""
    first, *rest = stages
    return Policy.from_dict({"name": name, "ops": first[1],
                             "stages": [{"start": e / epochs, "ops": ops} for e, ops in rest]})


def load_stages(checkpoint: Any) -> Stages:
    """The ``stages`` a PBT trial's :class:`ray.tune.Checkpoint` holds."""
    with checkpoint.as_directory() as folder:
        return [(int(e), ops) for e, ops in torch.load(Path(folder) / STATE_FILE)["stages"]]
