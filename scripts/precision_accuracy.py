"""Does the default precision cost accuracy? The same runs in float32 and in ``--precision auto``, paired by seed.

    python scripts/precision_accuracy.py fashion_mnist_small --train-size 4000 --out reports/precision-fashion_mnist
    python scripts/precision_accuracy.py parquet:../shared/data/cifar10-train-resplit --train-size 4000 \\
        --out reports/precision-cifar10

Each run is ``autoaug train`` in its own process with one thread (a trial's share on a 2-core machine), two at a
time; the defaults are the ``small`` search budget's model and schedule (convnet, 30 epochs, batch 64). Writes
``precision.md`` (test accuracy per seed, the paired difference auto - fp32 with its 95% interval, seconds per
run) and each run's JSON into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autoaug.machine import describe
from autoaug.stats import compare_paired, mean_std

PRECISIONS = ("fp32", "auto")


def run(args: argparse.Namespace, precision: str, seed: int) -> dict:
    out = args.out / f"{precision}-seed{seed}.json"
    if not out.exists():
        cmd = [sys.executable, "-m", "autoaug", "train", args.dataset, "--model", args.model, "--epochs",
               str(args.epochs), "--batch-size", str(args.batch_size), "--train-size", str(args.train_size),
               "--policy", args.policy, "--precision", precision, "--seed", str(seed), "--output", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        log = args.out / f"{precision}-seed{seed}.log"
        with log.open("w") as f:
            subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
    return json.loads(out.read_text())["runs"][0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--model", default="convnet")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--policy", default="none")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(1, args.seeds + 1))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {(prec, s): pool.submit(run, args, prec, s) for prec in PRECISIONS for s in seeds}
        runs = {key: f.result() for key, f in futures.items()}
    wall = time.perf_counter() - t0
    acc = {prec: [runs[prec, s]["test_acc"] for s in seeds] for prec in PRECISIONS}
    secs = {prec: [runs[prec, s]["train_seconds"] for s in seeds] for prec in PRECISIONS}
    diff = compare_paired(acc["auto"], acc["fp32"])
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    command = " ".join(["python scripts/precision_accuracy.py", *sys.argv[1:]])
    lines = [f"# Precision and accuracy: {args.dataset}", "",
             f"`{args.model}`, {args.epochs} epochs, batch {args.batch_size}, {args.train_size} training images, "
             f"policy `{args.policy}`, seeds {', '.join(map(str, seeds))}; each run `autoaug train` with one thread, "
             f"{args.jobs} at a time ({wall / 60:.1f} min in all). Machine: {describe()}; git {rev}.", "",
             f"Command: `{command}`", "",
             "| precision | " + " | ".join(f"seed {s}" for s in seeds) + " | test acc mean ± std | s per run |",
             "|---|" + "---|" * len(seeds) + "---|---|"]
    for prec in PRECISIONS:
        m, sd = mean_std(acc[prec])
        shown = prec if prec != "auto" else f"auto (= {runs['auto', seeds[0]]['precision']})"
        lines.append(f"| {shown} | " + " | ".join(f"{a:.4f}" for a in acc[prec]) + f" | {m:.4f} ± {sd:.4f} "
                     f"| {mean_std(secs[prec])[0]:.0f} |")
    lines += ["", f"auto - fp32, paired by seed: {diff}. Time: auto takes "
                  f"{mean_std(secs['auto'])[0] / mean_std(secs['fp32'])[0]:.2f}x the float32 run's seconds.", ""]
    (args.out / "precision.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
