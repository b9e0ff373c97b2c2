"""The augmentation's share of a trial's training time: each preset trained for real (``convnet``, in the precision a
trial resolves to on this machine, one thread, batch 64, 3x32x32: the ``small`` budget's setting on CIFAR-10;
``--shape 1 28 28``: on Fashion-MNIST), its ``aug_seconds`` (sampling, applying and mixing, what a trial's
``aug_ms_per_batch`` times) over the epoch's training time, with the epoch's batches augmented several at a time
(as ``Batches`` does) against one batch per call. The augmentation runs between training steps, as in a trial: a
loop of augmentation calls alone runs about twice as fast, since every training step evicts what the many small
kernels of a batch keep in the caches. The goal is at most 5% for the sampled layer.

    python benchmarks/bench_aug_share.py [--threads 1] [--batch 64] [--steps 48] [--shape 3 32 32]
        [--policies PRESET|FILE.json ...]

``benchmarks/policies/sampled-cutout-cutmix.json`` is a policy a CIFAR-10 search sampled (crop and flip, two
RandAugment-style ops, cutout on 96% of the images, CutMix on 54% of the batches), among the dearest of its trials.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from autoaug.data.datasets import DatasetSplits
from autoaug.machine import describe
from autoaug.train.batches import chunk_batches
from autoaug.train.trainer import TrainConfig, Trainer

PRESET_NAMES = ("cropflip", "randaugment", "trivialaugment", "cropflip+randaugment", "cropflip+trivialaugment",
                "cropflip+cutout", "autoaugment", "cropflip+mixup", "cropflip+cutmix")


def share(data: DatasetSplits, policy: str, batch: int, chunk: int) -> tuple[float, float]:
    """Milliseconds of augmentation per batch and its share of the training time, in the second of two epochs."""
    config = TrainConfig(model="convnet", epochs=2, batch_size=batch, optimizer="sgd", aug_chunk=chunk)
    trainer = Trainer(config, data, policy)
    trainer.run_epoch()  # warm-up
    m = trainer.run_epoch()
    return m["aug_ms_per_batch"], m["aug_seconds"] / (m["epoch_seconds"] - m["val_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=48, help="training steps per epoch")
    parser.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32], metavar=("C", "H", "W"))
    parser.add_argument("--policies", nargs="+", default=list(PRESET_NAMES), metavar="POLICY",
                        help="preset names or policy JSON files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = args.batch * args.steps
    x = torch.randint(0, 256, (n, *args.shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    data = DatasetSplits("bench", tuple(map(str, range(10))), x, y, x[:64], y[:64], x[:64], y[:64])
    chunk = chunk_batches(args.batch, tuple(args.shape))
    print(f"{describe()}; {args.threads} thread(s), batch {args.batch}, "
          f"{'x'.join(map(str, args.shape))}, {args.steps} steps an epoch; {chunk} batches per call")
    print(f"{'policy':<26} {'ms/batch, 1 per call':>20} {'share':>6} {f'ms/batch, {chunk} per call':>20} "
          f"{'share':>6} {'speed-up':>8}")
    for spec in args.policies:
        one_ms, one_share = share(data, spec, args.batch, 1)
        ms, frac = share(data, spec, args.batch, chunk)
        name = Path(spec).stem if spec.endswith(".json") else spec
        print(f"{name:<26} {one_ms:>20.2f} {100 * one_share:>5.1f}% {ms:>20.2f} {100 * frac:>5.1f}% "
              f"{one_ms / ms:>7.1f}x")


if __name__ == "__main__":
    main()
