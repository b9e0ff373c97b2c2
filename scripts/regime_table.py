"""Train each standard at a few epoch counts under one recipe and write a markdown table of validation accuracy:
where does augmentation pay, and at what cost? The search budgets' regime is chosen from it.

    python scripts/regime_table.py parquet:../shared/data/cifar10-train-resplit --train-size 4000 \\
        --epochs 30 60 --seeds 1 --optimizer sgd --lr 0.05 --weight-decay 5e-4 --out reports/regime-cifar10

Each run is ``autoaug train`` with one torch thread (``--jobs`` of them at once, longest first); a run whose JSON
is already in ``--out`` is not trained again, so a killed table resumes. The table reads the validation split only
(the decision it informs must not see the test split): mean over seeds, and each policy's difference from the
first policy given, paired by seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autoaug.machine import describe
from autoaug.stats import mean_std


def label(policy: str) -> str:
    """A policy's name in the table and the run files: the preset's name, or a policy file's stem."""
    return Path(policy).stem if policy.endswith(".json") else policy


def run_path(out: Path, policy: str, epochs: int, seed: int) -> Path:
    return out / "runs" / f"{label(policy)}-e{epochs}-s{seed}.json"


def train_one(args: argparse.Namespace, policy: str, epochs: int, seed: int) -> None:
    path = run_path(args.out, policy, epochs, seed)
    if path.is_file():
        return
    cmd = [sys.executable, "-m", "autoaug", "train", args.dataset, "--policy", policy, "--model", args.model,
           "--epochs", str(epochs), "--seed", str(seed), "--batch-size", str(args.batch_size),
           "--optimizer", args.optimizer, "--lr", str(args.lr), "--weight-decay", str(args.weight_decay),
           "--output", str(path)]
    if args.train_size:
        cmd += ["--train-size", str(args.train_size)]
    log = path.with_suffix(".log")
    print("$", " ".join(cmd[1:]), flush=True)
    with log.open("w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    print(f"done {path.name}", flush=True)


def val_acc(path: Path) -> tuple[float, float]:
    """(final validation accuracy, training seconds) of one run."""
    run = json.loads(path.read_text())["runs"][0]
    last = [h for h in run["history"] if "val_acc" in h][-1]
    return last["val_acc"], sum(h["epoch_seconds"] for h in run["history"])


def finished(args: argparse.Namespace, policy: str, epochs: int) -> dict[int, tuple[float, float]]:
    """Seed -> (validation accuracy, training seconds) of ``policy``'s runs at ``epochs`` that are done."""
    paths = {s: run_path(args.out, policy, epochs, s) for s in args.seeds}
    return {s: val_acc(path) for s, path in paths.items() if path.is_file()}


def table(args: argparse.Namespace) -> list[str]:
    first = args.policies[0]
    rows = [f"| epochs | policy | val acc (mean ± std) | Δ vs {label(first)} (per seed) | mean Δ | minutes per run |",
            "|---|---|---|---|---|---|"]
    for epochs in args.epochs:
        ref = {s: acc for s, (acc, _) in finished(args, first, epochs).items()}
        for policy in args.policies:
            done = finished(args, policy, epochs)
            if not done:
                continue
            acc = mean_std([a for a, _ in done.values()])
            deltas = [done[s][0] - ref[s] for s in done if s in ref]
            minutes = sum(t for _, t in done.values()) / len(done) / 60
            mean_delta = f"{sum(deltas) / len(deltas):+.4f}" if deltas else "-"
            rows.append(f"| {epochs} | {label(policy)} | {acc[0]:.4f} ± {acc[1]:.4f} (n={len(done)}) | "
                        f"{' '.join(f'{d:+.4f}' for d in deltas) or '-'} | {mean_delta} | {minutes:.1f} |")
    return rows


def means(args: argparse.Namespace, epochs: int) -> dict[str, float]:
    """Each policy's mean validation accuracy at ``epochs`` over the seeds it has runs for."""
    out = {}
    for policy in args.policies:
        if done := [acc for acc, _ in finished(args, policy, epochs).values()]:
            out[label(policy)] = sum(done) / len(done)
    return out


def kendall_tau(a: dict[str, float], b: dict[str, float]) -> float:
    """Kendall's tau-a between two scorings of the same policies: the share of concordant minus discordant pairs."""
    keys = sorted(a.keys() & b.keys())
    pairs = [(x, y) for i, x in enumerate(keys) for y in keys[i + 1:]]
    signs = [((a[x] > a[y]) - (a[x] < a[y])) * ((b[x] > b[y]) - (b[x] < b[y])) for x, y in pairs]
    return sum(signs) / len(signs) if signs else float("nan")


def ranking_kept(args: argparse.Namespace) -> list[str]:
    """How well a shorter complete schedule keeps the longest one's order of the policies (the fidelity question)."""
    longest = max(args.epochs)
    final = means(args, longest)
    lines = []
    for epochs in sorted(set(args.epochs) - {longest}):
        short = means(args, epochs)
        if not short or not final:
            continue
        top = max(short, key=short.get)  # type: ignore[arg-type]
        rank = sorted(final, key=final.get, reverse=True).index(top) + 1  # type: ignore[arg-type]
        lines.append(f"- {epochs} epochs against {longest}: Kendall tau {kendall_tau(short, final):+.2f} over "
                     f"{len(short.keys() & final.keys())} policies; the best at {epochs} ({top}) ranks {rank} at "
                     f"{longest}.")
    return lines


def report(args: argparse.Namespace) -> list[str]:
    """The markdown page: the recipe, the table, the order a shorter schedule keeps, how to reproduce it."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    kept = ranking_kept(args)
    return [
        f"# {args.title} on {args.dataset}",
        "",
        f"Model `{args.model}`, {args.train_size} training images, batch {args.batch_size}, {args.optimizer} "
        f"lr {args.lr:g} (cosine) weight decay {args.weight_decay:g}; seeds {' '.join(map(str, args.seeds))}. "
        "Validation split only (the test split is kept for the reports).",
        "",
        *table(args),
        "",
        *(["Order kept by a shorter complete schedule (means over the seeds):", "", *kept, ""] if kept else []),
        f"Reproduce: `python scripts/regime_table.py {' '.join(a for a in sys.argv[1:] if a != '--no-train')}`",
        "",
        f"Machine: {describe()}; {args.jobs} runs at once with one torch thread each; "
        f"Python {platform.python_version()}; table written at git {rev}.",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("--policies", nargs="+", default=["cropflip", "cropflip+randaugment", "cropflip+autoaugment",
                                                     "cropflip+cutout", "randaugment", "cropflip+trivialaugment"])
    p.add_argument("--epochs", type=int, nargs="+", default=[30, 60])
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--model", default="convnet")
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default="Standards over epoch counts")
    p.add_argument("--no-train", action="store_true", help="write the table from the runs already in --out")
    args = p.parse_args()
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    work = [] if args.no_train else sorted(
        ((pol, e, s) for e in args.epochs for pol in args.policies for s in args.seeds), key=lambda w: -w[1])
    with ThreadPoolExecutor(args.jobs) as pool:
        for future in [pool.submit(train_one, args, *w) for w in work]:
            future.result()
    text = "\n".join(report(args)) + "\n"
    (args.out / "README.md").write_text(text)
    print(text, end="")

if __name__ == "__main__":
    main()
