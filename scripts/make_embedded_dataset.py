"""Build autoaug/data/fashion_mnist_small.npz: a class-balanced, seeded subset of the real Fashion-MNIST.

Needs Debian's ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``). Rerun with the
same arguments to get the same file.

    python scripts/make_embedded_dataset.py --train 10000 --test 2000 --seed 0
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from autoaug.data.datasets import stratified_split
from autoaug.data.sources import DEBIAN_FASHION_DIR, EMBEDDED_FILE, read_idx
from autoaug.seeding import derive_seed, make_generator


def subset(prefix: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(DEBIAN_FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz")
    y = read_idx(DEBIAN_FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz")
    idx, _ = stratified_split(torch.from_numpy(y.astype(np.int64)), n, make_generator(derive_seed(seed, prefix)))
    return x[idx.numpy()], y[idx.numpy()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    train_x, train_y = subset("train", args.train, args.seed)
    test_x, test_y = subset("t10k", args.test, args.seed)
    EMBEDDED_FILE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(EMBEDDED_FILE, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
    print(f"wrote {EMBEDDED_FILE} ({EMBEDDED_FILE.stat().st_size / 1e6:.2f} MB): "
          f"train {np.bincount(train_y).tolist()}, test {np.bincount(test_y).tolist()}")


if __name__ == "__main__":
    main()
