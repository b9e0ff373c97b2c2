"""Cost of synthetic data: generating a batch share, and training epochs at synthetic ratios 0, 0.2 and 0.5.

1. Generation: median milliseconds for ``Generator.sample`` of the images one batch of 64 needs at each
   ratio, for each generator (untrained weights: the cost does not depend on them).
2. Training: seconds per epoch of ``convnet`` with the ``none`` policy at each ratio, median over epochs
   2..E. An epoch still passes over every real image once, so at ratio r it has 1 / (1 - r) times as many
   batches: the slowdown is that, plus generation.

    python benchmarks/bench_synthetic.py --out reports/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from autoaug.augment.policy import Policy, Synthetic
from autoaug.data.datasets import DEFAULT_DATASET, load_dataset
from autoaug.data.synthetic import GENERATORS, Generator, GeneratorSpec
from autoaug.machine import describe
from autoaug.train.trainer import TrainConfig, Trainer

RATIOS = (0.0, 0.2, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=DEFAULT_DATASET)
    ap.add_argument("--train-size", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a CPU trial's share; default 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="write a section of this Markdown report")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_dataset(args.dataset, train_size=args.train_size, seed=0)

    gen_rows = []
    for kind in GENERATORS:
        gen = Generator(GeneratorSpec(kind, data.name, data.image_shape, data.num_classes)).to(device)
        for ratio in RATIOS[1:]:
            labels = torch.zeros(round(ratio * 64), dtype=torch.long, device=device)
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                gen.sample(labels)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            gen_rows.append(f"| {kind} | {ratio:g} | {len(labels)} | {1000 * statistics.median(times[5:]):.2f} |")

    gens = {k: Generator(GeneratorSpec(k, data.name, data.image_shape, data.num_classes)) for k in GENERATORS}
    epoch_rows, base = [], None
    for ratio in RATIOS:
        for kind in GENERATORS if ratio else ("—",):
            policy = Policy(synthetic=Synthetic(ratio, kind) if ratio else None)
            trainer = Trainer(TrainConfig(model="convnet", epochs=args.epochs, batch_size=64, device=args.device),
                              data, policy, generators=gens)
            history = [trainer.run_epoch() for _ in range(args.epochs)][1:]
            epoch = statistics.median(m["epoch_seconds"] for m in history)
            generating = statistics.median(m["synthetic_seconds"] for m in history)
            base = base or epoch
            epoch_rows.append(f"| {ratio:g} | {kind} | {trainer.batches.steps} | {epoch:.2f} | {generating:.2f} | "
                              f"{epoch / base:.2f}x |")
            print(epoch_rows[-1], flush=True)

    body = "\n".join([
        f"Machine: {describe()}; {args.threads} torch thread(s), {args.device}; torch {torch.__version__}.",
        "",
        f"Command: `python benchmarks/bench_synthetic.py --train-size {args.train_size} --epochs {args.epochs} "
        f"--threads {args.threads} --out reports/benchmarks.md`. {data.summary()}.",
        "",
        "Generation of one batch share (median of 25 calls):",
        "",
        "| generator | ratio | images | ms |",
        "|---|---|---|---|",
        *gen_rows,
        "",
        f"Training `convnet`, batch 64, policy `none` (median over epochs 2..{args.epochs}):",
        "",
        "| ratio | generator | batches per epoch | s per epoch | generating s | epoch vs ratio 0 |",
        "|---|---|---|---|---|---|",
        *epoch_rows,
    ])
    print(body)
    if args.out:
        write_section(args.out, "Synthetic data cost", body)


if __name__ == "__main__":
    main()
