"""Build ``autoaug/data/cifar10_small.npz``: a class-balanced subset of CIFAR-10's *training* split (2,000 train and
1,000 test images, 32x32 RGB), drawn from the re-split parquet set (45,000 train / 5,000 test, all from CIFAR-10's
training split).

    python scripts/make_cifar10_small.py ../shared/data/cifar10-train-resplit
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from autoaug.data.datasets import load_raw, stratified_split
from autoaug.data.sources import CIFAR_SMALL_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the parquet folder of the re-split CIFAR-10 training images")
    args = parser.parse_args()
    raw = load_raw(f"parquet:{args.folder}")
    train, _ = stratified_split(raw.train_y, 2000, torch.Generator().manual_seed(0))
    test, _ = stratified_split(raw.test_y, 1000, torch.Generator().manual_seed(1))
    train, test = train.sort().values, test.sort().values
    np.savez_compressed(CIFAR_SMALL_FILE, train_x=raw.train_x[train].numpy(),
                        train_y=raw.train_y[train].numpy().astype(np.uint8), test_x=raw.test_x[test].numpy(),
                        test_y=raw.test_y[test].numpy().astype(np.uint8))
    print(f"wrote {CIFAR_SMALL_FILE} ({CIFAR_SMALL_FILE.stat().st_size / 1e6:.1f} MB): {len(train)} train, "
          f"{len(test)} test images of {len(raw.classes)} classes")


if __name__ == "__main__":
    main()
