"""Training and evaluation speed per precision: images/s of smallcnn, convnet and timm:resnet18.

For each model at 1x28x28 (Fashion-MNIST) and 3x32x32 (CIFAR-10), through autoaug's own ``Trainer`` step
(forward, backward, Adam; batch 64 as the ``small`` budget) and ``evaluate`` (no gradient): float32 with
channels-first tensors (autoaug before ``--precision``), float32 channels-last, and what ``--precision auto``
picks here, as ratios in one run. With ``--compile``, also ``torch.compile``: its compile time and the steps
after which it pays off. Threads: one, a trial's share on a 2-core machine.

    python benchmarks/bench_train.py --out reports/benchmarks.md
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from bench_augment import median_ms

from autoaug.data.datasets import DatasetSplits
from autoaug.machine import describe
from autoaug.train.trainer import TrainConfig, Trainer, evaluate

MODELS = ("smallcnn", "convnet", "timm:resnet18")
SHAPES = {"28x28x1": (1, 28, 28), "32x32x3": (3, 32, 32)}
BATCH = 64


def _data(shape: tuple[int, int, int], n: int = 2048) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return DatasetSplits("bench", tuple(map(str, range(10))), x, y, x[:1024], y[:1024], x[:0], y[:0])


def _median_s(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    return median_ms(fn, reps, warmup) / 1000


def trainer(model: str, shape: tuple[int, int, int], variant: str) -> Trainer:
    """``fp32-nchw`` (autoaug before precision), ``fp32`` (channels-last) or ``auto``."""
    precision = "auto" if variant == "auto" else "fp32"
    t = Trainer(TrainConfig(model=model, epochs=1, batch_size=BATCH, precision=precision), _data(shape), "none")
    if variant == "fp32-nchw":
        t.model.channels_last = False
        t.model.module.to(memory_format=torch.contiguous_format)
    return t


def rates(model: str, shape: tuple[int, int, int], variant: str, reps: int) -> tuple[float, float, str]:
    """Training and evaluation images/s, and the precision the run resolved to."""
    t = trainer(model, shape, variant)
    xb, yb = t.batches.x[:BATCH].float() / 255, t.batches.y[:BATCH]
    t.model.train()
    train_s = _median_s(lambda: t._step(xb, yb), reps)
    eval_s = _median_s(lambda: evaluate(t.model, t.val_x, t.val_y), max(3, reps // 10), warmup=1)
    return BATCH / train_s, len(t.val_y) / eval_s, t.precision.name


def compile_cost(model: str, shape: tuple[int, int, int], reps: int) -> tuple[float, float, float]:
    """Seconds of the first compiled step (compilation), and steps/s eager vs compiled (both ``auto``)."""
    eager = trainer(model, shape, "auto")
    xb, yb = eager.batches.x[:BATCH].float() / 255, eager.batches.y[:BATCH]
    eager_rate = 1 / _median_s(lambda: eager._step(xb, yb), reps)
    compiled = trainer(model, shape, "auto")
    compiled.model.module = torch.compile(compiled.model.module)
    t0 = time.perf_counter()
    compiled._step(xb, yb)
    first = time.perf_counter() - t0
    return first, eager_rate, 1 / _median_s(lambda: compiled._step(xb, yb), reps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (minutes on a CPU)")
    p.add_argument("--out", type=Path, default=None, help="also write the tables as markdown here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lines = ["| model | input | train img/s fp32 NCHW | fp32 channels-last | auto | auto / fp32 NCHW "
             "| eval img/s fp32 NCHW | auto | auto / fp32 NCHW |", "|---|---|---|---|---|---|---|---|---|"]
    resolved = ""
    for model in MODELS:
        for shape_name, shape in SHAPES.items():
            (t0, e0, _), (t1, _, _), (t2, e2, resolved) = (rates(model, shape, v, args.reps)
                                                            for v in ("fp32-nchw", "fp32", "auto"))
            lines.append(f"| {model} | {shape_name} | {t0:,.0f} | {t1:,.0f} | {t2:,.0f} | **{t2 / t0:.1f}x** "
                         f"| {e0:,.0f} | {e2:,.0f} | {e2 / e0:.1f}x |")
            print(lines[-1], flush=True)
    if args.compile:
        lines += ["", "torch.compile (auto precision, same step):", "",
                  "| model | input | compile s (first step) | steps/s eager | compiled | steps to pay off |",
                  "|---|---|---|---|---|---|"]
        for model in ("convnet",):  # the search's model
            for shape_name, shape in SHAPES.items():
                first, eager, compiled = compile_cost(model, shape, args.reps)
                gain = 1 / eager - 1 / compiled
                pays = f"{first / gain:,.0f}" if gain > 0 else "never"
                lines.append(f"| {model} | {shape_name} | {first:.1f} | {eager:.1f} | {compiled:.1f} | {pays} |")
                print(lines[-1], flush=True)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = [
        f"Machine: {describe()}; {args.threads} torch thread(s); Python "
        f"{platform.python_version()}, torch {torch.__version__}; git {rev}. `auto` resolved to `{resolved}` here.", "",
        f"Command: `python benchmarks/bench_train.py{' --compile' if args.compile else ''} --out "
        "reports/benchmarks.md`. Training: one optimizer step of autoaug's `Trainer` (forward, backward, Adam) on "
        f"a batch of {BATCH}, median of {args.reps}. Evaluation: `evaluate` on 1,024 images in batches of 1,024.", "",
    ]
    if args.out is not None:
        write_section(args.out, "Training speed per precision", "\n".join(header + lines))


if __name__ == "__main__":
    main()
