"""Overhead of adaptive augmentation: seconds per training epoch with a fixed policy, a parametric schedule,
the feedback controller and AugNet, all over the same ops (the ``baseline`` preset's), plus no augmentation.

Each run trains ``--epochs`` epochs in this process; the first epoch is left out (warm-up) and the median
of the others is taken over ``--repeats`` runs, the policies interleaved so that drift hits all alike.
``control`` is the time spent inside the controller (AugNet's forward pass, its held-out loss and its
update; the feedback rule), measured around those calls.

    python benchmarks/bench_adaptive.py --out reports/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from autoaug.augment.policy import Policy
from autoaug.augment.presets import PRESETS
from autoaug.augment.schedule import Schedule
from autoaug.data.datasets import DEFAULT_DATASET, load_dataset
from autoaug.machine import describe
from autoaug.train.trainer import TrainConfig, train


def policies() -> dict[str, Policy]:
    fixed = PRESETS["baseline"]
    return {
        "none": PRESETS["none"],
        "fixed": fixed,
        "scheduled (linear)": replace(fixed, schedule=Schedule("linear", {"start": 0.0, "end": 1.0})),
        "feedback": replace(fixed, schedule=Schedule("feedback")),
        "augnet": replace(fixed, schedule=Schedule("augnet")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=DEFAULT_DATASET)
    ap.add_argument("--train-size", type=int, default=4000)
    ap.add_argument("--model", default="convnet")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a CPU trial's share; default 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="write a section of this Markdown report")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, train_size=args.train_size, seed=0)
    cfg = TrainConfig(model=args.model, epochs=args.epochs, batch_size=64, device=args.device)
    times: dict[str, dict[str, list[float]]] = {name: {"epoch": [], "aug": [], "control": []} for name in policies()}
    for repeat in range(args.repeats):
        for name, policy in policies().items():
            history = train(replace(cfg, seed=repeat), data, policy).history[1:]
            times[name]["epoch"] += [m["epoch_seconds"] for m in history]
            times[name]["aug"] += [m["aug_seconds"] for m in history]
            times[name]["control"] += [m["control_seconds"] for m in history]
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {times[name]['epoch'][-1]:.2f} s per epoch", flush=True)

    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    fixed = med["fixed"]["epoch"]
    rows = [f"| {name} | {m['epoch']:.2f} | {m['aug']:.2f} | {m['control']:.3f} | {m['epoch'] / fixed:.2f}x | "
            f"{100 * m['control'] / fixed:.1f}% |" for name, m in med.items()]
    steps = (len(data.train_y) - 256) // 64  # AugNet's batches per epoch
    body = "\n".join([
        f"Machine: {describe()}; {args.threads} torch thread(s), {args.device}; torch {torch.__version__}.",
        "",
        f"Command: `python benchmarks/bench_adaptive.py --train-size {args.train_size} --epochs {args.epochs} "
        f"--repeats {args.repeats} --threads {args.threads} --out reports/benchmarks.md`. {data.summary()}; "
        f"`{args.model}`, batch 64; ops of the `baseline` preset. Median over epochs 2..{args.epochs} of "
        f"{args.repeats} runs. AugNet draws every 20 batches (about {steps / 20:.1f} draws an epoch) and measures "
        "the loss of 256 held-out images before each draw, which it trains without (so its epochs have 4 fewer "
        "batches).",
        "",
        "| policy | s per epoch | augmenting s | controller s | epoch vs fixed | controller / fixed epoch |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    if args.out:
        write_section(args.out, "Adaptive augmentation overhead", body)


if __name__ == "__main__":
    main()
