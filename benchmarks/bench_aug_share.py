"""The augmentation's share of a trial's training step: each preset's batch (sampling, applying and mixing, what a
trial's ``aug_ms_per_batch`` times) against one ``convnet`` training step (forward, backward, optimizer; in the
precision a trial resolves to on this machine), at one thread, batch 64, 3x32x32: the ``small`` budget's setting
on CIFAR-10 (``--shape 1 28 28``: on Fashion-MNIST). The goal is at most 5% for the sampled layer.

    python benchmarks/bench_aug_share.py [--threads 1] [--batch 64] [--reps 50] [--shape 3 32 32]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_augment import median_ms

from autoaug.augment.presets import PRESETS
from autoaug.data.datasets import DatasetSplits
from autoaug.train.batches import Batches
from autoaug.train.trainer import TrainConfig, Trainer

PRESET_NAMES = ("cropflip", "randaugment", "trivialaugment", "cropflip+randaugment", "cropflip+trivialaugment",
                "cropflip+cutout", "autoaugment", "cropflip+mixup", "cropflip+cutmix")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32], metavar=("C", "H", "W"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = args.batch * 8
    x = torch.randint(0, 256, (n, *args.shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    data = DatasetSplits("bench", tuple(map(str, range(10))), x, y, x[:64], y[:64], x[:64], y[:64])
    trainer = Trainer(TrainConfig(model="convnet", epochs=1, batch_size=args.batch), data, PRESETS["none"])
    xb, yb = trainer.batches.batch(torch.arange(args.batch), 0.0)
    step = median_ms(lambda: trainer._step(xb, yb), args.reps, warmup=5)
    print(f"{platform.processor() or platform.machine()}, {args.threads} thread(s), batch {args.batch}, "
          f"{'x'.join(map(str, args.shape))}; "
          f"convnet step ({trainer.precision.name}): {step:.1f} ms")
    print(f"{'policy':<26} {'ms / batch':>10} {'share of a step':>16}")
    real, labels = xb.clone(), y[: args.batch]
    for name in PRESET_NAMES:
        batches = Batches(x, y, batch_size=args.batch, num_classes=10, policy=PRESETS[name], seed=0,
                          device=torch.device("cpu"))
        # what a trial's aug_ms_per_batch times: the per-image ops and the batch mixing, on the float batch
        ms = median_ms(lambda b=batches: b._mix(b._augment(real, 0.5), labels), args.reps, warmup=5)
        print(f"{name:<26} {ms:>10.2f} {100 * ms / step:>15.1f}%")


if __name__ == "__main__":
    main()
