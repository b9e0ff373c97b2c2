"""Search budgets: how many trials of how many epochs on how many images, with which model and training recipe,
and where ASHA's rung falls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# asha: Optuna samples, ASHA stops weak trials early; fifo: every trial runs all its epochs (benchmarks);
# pbt: population based training changes the magnitudes and probabilities during training
SCHEDULERS = ("asha", "fifo", "pbt")
RECIPE = ("optimizer", "lr", "weight_decay", "warmup")  # the training recipe a budget sets and search.json records


@dataclass(frozen=True)
class Budget:
    """Search size. The CPU budgets search on a reduced training set (as AutoAugment searched on 4,000
    CIFAR-10 images), where augmentation matters most and a trial is cheap. ``select``: how many of the best
    completed trials train again on ``extra_seeds`` more seeds before the best is named
    (:mod:`autoaug.search.selection`). ``optimizer``, ``lr``, ``weight_decay`` and ``warmup`` (the share of the
    steps the rate rises over): the training recipe of every
    trial and final run."""

    trials: int
    epochs: int
    model: str = "convnet"
    train_size: int | None = None
    batch_size: int = 64
    select: int = 3
    extra_seeds: int = 2
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.0

    def recipe(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in RECIPE}


BUDGETS = {
    "tiny": Budget(trials=4, epochs=2, model="smallcnn", train_size=2000, select=1, extra_seeds=1),
    # minutes on a laptop's CPU: 1,000 images trained to memorization (SGD, 30 epochs), where crop and flip pay
    # off clearly, so that the search has something to find (the README's demo, on cifar10_small); `smallcnn`, a
    # third of `convnet`'s time, so that 8 trials (none, the 5 standards of the default space, 2 that Optuna
    # samples) and the report on every standard fit in 10 minutes on a 2-core CPU without native bfloat16 (40
    # epochs took 10.5 there)
    "demo": Budget(trials=8, epochs=30, model="smallcnn", train_size=1000, batch_size=32, select=1, extra_seeds=1,
                   optimizer="sgd", lr=0.05, weight_decay=5e-4),
    # SGD for 60 epochs: on the development resplit (reports/regime-cifar10-sgd) RandAugment and AutoAugment on crop
    # and flip beat crop and flip by a point here, where at 30 epochs (SGD, and Adam: reports/regime-cifar10-adam)
    # the policies stronger than crop and flip lost accuracy, so that a search could only turn augmentation down;
    # a run costs twice the 30 epochs'. `none` and the standards run once, on the selection's seed, and the best
    # sampled trial once more on it: trials plus selection are at most 13 runs (fewer where ASHA stops trials)
    "small": Budget(trials=12, epochs=60, train_size=4000, select=1, extra_seeds=1, optimizer="sgd", lr=0.05,
                    weight_decay=5e-4),
    "medium": Budget(trials=40, epochs=60, train_size=10000, optimizer="sgd", lr=0.05, weight_decay=5e-4),
    "large": Budget(trials=100, epochs=60, batch_size=128),
}
# ASHA's first rung, as a share of the epochs. Under a cosine learning-rate schedule augmented models lag early and
# overtake late: in the committed reports' per-epoch histories (scripts/rung_bias.py) rungs at 1/3 to 2/3 of
# training reverse the final order of none, the standards and the searched policy; from 0.8 on every pair apart by
# more than 0.003 keeps it (8 of 9 reports; the ninth flips one pair 0.005 apart, within seed noise, at 0.9).
RUNG = 0.8


def rung_epoch(epochs: int) -> int:
    """The epoch of ASHA's first rung for a schedule of ``epochs`` (:data:`RUNG` of them, at least 1)."""
    return max(1, round(RUNG * epochs))


def val_every(grace: int, epochs: int) -> int:
    """Validate about ten times a trial, on every ASHA rung: rungs fall at multiples of ``grace`` (grace x 3^k),
    so the interval is the largest divisor of ``grace`` up to a tenth of ``epochs``."""
    return max(d for d in range(1, grace + 1) if grace % d == 0 and d <= max(1, epochs // 10))
