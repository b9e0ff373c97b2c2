"""Search overhead: the same trials in a plain loop vs through ``tune_policy``; Ray start-up; memory.

1. ``tune_policy`` runs N trials without early stopping (``scheduler="fifo"``), ``cpus`` trials at a time
   with one thread each; then one plain Python process trains the very same N policies one after another
   with ``cpus`` threads. Both clocks include loading the dataset; the ratio tune / plain is the price of
   Ray, Optuna and MLflow (goal: at most 1.2x on CPU).
2. Ray start-up: ``ray.init()`` to ready, and ``ray.shutdown()``.
3. Peak memory (PSS, which splits shared pages among the processes that map them) of this process and all
   its descendants while a search runs 1 and then 4 trials at a time, on a small and a large dataset: the
   dataset sits once in Ray's object store, so a trial more costs one worker process, not a dataset copy,
   and that cost does not grow with the dataset.

    python benchmarks/bench_search.py --out reports/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from autoaug.data.datasets import load_dataset
from autoaug.machine import describe
from autoaug.search.driver import BUDGETS, tune_policy
from autoaug.search.space import load_space
from autoaug.train.trainer import TrainConfig, train


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pss_mb(root: int) -> float:
    """PSS of ``root`` and all its descendants, in MB (from /proc/PID/smaps_rollup)."""
    tree, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


class PeakMemory:
    """Samples :func:`tree_pss_mb` of this process every ``period`` seconds in a thread."""

    def __init__(self, period: float = 0.25) -> None:
        self.period, self.peak, self._stop = period, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss_mb(os.getpid()))
            self._stop.wait(self.period)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def search(tmp: Path, name: str, dataset: str, **kwargs: object) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = tune_policy(dataset, budget="tiny", storage=tmp / "runs", name=name, scheduler="fifo",
                         tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", echo=lambda line: None, **kwargs)
    return time.perf_counter() - t0, result


def plain_loop(dataset: str, result: object, args: argparse.Namespace) -> float:
    """Train the search's policies one after another in this process, all threads, same settings."""
    torch.set_num_threads(args.cpus)
    space = load_space(result.record.space)  # the one the search used
    t0 = time.perf_counter()
    data = load_dataset(dataset, train_size=args.train_size, seed=0)
    base = TrainConfig(model=args.model, epochs=args.epochs, batch_size=BUDGETS["tiny"].batch_size, seed=0)
    for _, row in result.trials.iterrows():
        params = {k[len("config/"):]: v for k, v in row.items() if k.startswith("config/")}
        train(base, data, space.to_policy(params))
    return time.perf_counter() - t0


def ray_startup(cpus: int) -> tuple[float, float]:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.get(ray.remote(lambda: 1).remote())
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.shutdown()
    return up, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion_mnist_small")
    parser.add_argument("--model", default="smallcnn")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--memory-datasets", nargs="+", default=["fashion_mnist_small", "fashion_mnist"],
                        help="datasets of the memory runs (full splits), small to large")
    parser.add_argument("--out", type=Path, default=None, help="write the section into this Markdown file")
    args = parser.parse_args()

    lines = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        up, down = ray_startup(args.cpus)
        lines.append(f"Ray start-up (local, {args.cpus} CPUs, until a first task returns): {up:.1f} s; "
                     f"shutdown {down:.1f} s.")
        print(lines[-1], flush=True)

        tune_s, result = search(tmp, "overhead", args.dataset, model=args.model, trials=args.trials,
                                epochs=args.epochs, train_size=args.train_size, num_cpus=args.cpus, cpus_per_trial=1)
        plain_s = plain_loop(args.dataset, result, args)
        lines.append(f"{args.trials} trials x {args.epochs} epochs, {args.model} on {args.train_size} images of "
                     f"{args.dataset}: plain loop {plain_s:.0f} s, tune_policy {tune_s:.0f} s, "
                     f"ratio **{tune_s / plain_s:.2f}x** (goal <= 1.2x).")
        print(lines[-1], flush=True)

        per_trial, sizes = {}, {}
        for dataset in args.memory_datasets:
            data = load_dataset(dataset)
            mb = sum(getattr(data, k).numel() * getattr(data, k).element_size()
                     for k in ("train_x", "train_y", "val_x", "val_y")) / 2**20
            sizes[dataset] = mb
            peaks = {}
            for k in (1, 4):
                with PeakMemory() as mem:
                    search(tmp, f"memory-{dataset}-{k}", dataset, model="smallcnn", trials=4, epochs=1,
                           num_cpus=args.cpus, cpus_per_trial=args.cpus / k)
                peaks[k] = mem.peak
            per_trial[dataset] = (peaks[4] - peaks[1]) / 3
            lines.append(f"Peak memory (PSS of the whole process tree), 4 one-epoch smallcnn trials on {dataset} "
                         f"(train+val {mb:.0f} MB as uint8): 1 trial at a time {peaks[1]:.0f} MB, 4 at a time "
                         f"{peaks[4]:.0f} MB, so {per_trial[dataset]:.0f} MB per extra concurrent trial.")
            print(lines[-1], flush=True)
        if len(per_trial) == 2:
            (a, cost_a), (b, cost_b) = per_trial.items()
            extra = sizes[b] - sizes[a]
            lines.append(f"An extra concurrent trial costs {cost_b - cost_a:+.0f} MB more on {b} than on {a}, whose "
                         f"train+val is {extra:.0f} MB larger as uint8 (a copy of the dataset per trial would add "
                         f"{extra:.0f} MB per trial, a float32 copy {4 * extra:.0f} MB).")
            print(lines[-1], flush=True)

    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = (f"Machine: {describe()}, CPU only; Python {platform.python_version()}, "
              f"torch {torch.__version__}; git {rev}.\n\nCommand: `python benchmarks/bench_search.py "
              f"{' '.join(sys.argv[1:])}`.\n")
    if args.out:
        write_section(args.out, "Search overhead", header + "\n" + "\n".join(f"- {line}" for line in lines))


if __name__ == "__main__":
    main()
