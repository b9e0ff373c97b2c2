"""Check whether an early ASHA rung would reverse the final ranking of policies in a report's training runs.

    python scripts/rung_bias.py reports/fashion_mnist-20261124-145151 reports/presets-fashion_mnist

A report folder holds either ``runs.json`` (``records``: one dict per run with ``policy``, ``seed`` and a
per-epoch ``history`` of dicts with ``epoch`` and ``val_acc``, the latter only on validated epochs) or, as in
``reports/presets-*``, one JSON per policy (``policy.name`` and ``runs``: dicts with ``seed`` and ``history``).
At each progress fraction f the epoch is round(f x epochs), half up, or the next validated epoch after it;
policies are ranked by their mean val accuracy over seeds there. A pair of policies whose final means differ by
more than ``--min-gap`` keeps its order at f when the same policy leads at f as at the end. The safe fraction is
the smallest f from which on every such pair keeps the final order, on the grid and on every validated epoch.
Only reads files.
"""

from __future__ import annotations

import argparse
import json
import math
from fractions import Fraction
from itertools import combinations
from pathlib import Path
from typing import TypeVar

import pandas as pd

FRACTIONS = "1/3 0.4 0.5 0.6 2/3 0.75 0.8 0.9 1"
FOCUS = "none trivialaugment searched"
K = TypeVar("K")


def load(folder: Path) -> pd.DataFrame:
    """Validation accuracy, one row per (policy, seed, epoch) where the run was validated."""
    runs_json = folder / "runs.json"
    if runs_json.exists():
        runs = [(r["policy"], r["seed"], r["history"]) for r in json.loads(runs_json.read_text())["records"]]
    else:
        runs = [(d["policy"]["name"], r["seed"], r["history"])
                for d in (json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))) if "runs" in d
                for r in d["runs"]]
    rows = [(policy, seed, h["epoch"], h["val_acc"])
            for policy, seed, history in runs for h in history if h.get("val_acc") is not None]
    return pd.DataFrame(rows, columns=["policy", "seed", "epoch", "val_acc"])


def flipped(means: pd.Series, final: pd.Series, pairs: list[tuple[str, str]]) -> list[str]:
    """The pairs, written as their final order ``winner>loser``, whose order at ``means`` is not the final one."""
    return [f"{a}>{b}" if final[a] > final[b] else f"{b}>{a}"
            for a, b in pairs if (means[a] - means[b]) * (final[a] - final[b]) <= 0]


def safe_from(keys: list[K], ok: list[bool]) -> K | None:
    """The first key from which on every ``ok`` is true, or None if the last one fails."""
    first = None
    for key, good in zip(keys, ok, strict=True):
        if not good:
            first = None
        elif first is None:
            first = key
    return first


def fmt(f: Fraction) -> str:
    """Thirds as fractions, the rest as decimals."""
    return str(f) if f.denominator == 3 else f"{float(f):g}"


def analyse(folder: Path, df: pd.DataFrame, fractions: list[Fraction], min_gap: float,
            focus: list[str]) -> tuple[str, Fraction | None]:
    """A markdown table of rankings per fraction for one report with its summary line, and its safe fraction."""
    # mean over the seeds, on the epochs every run validated
    table = df.pivot_table(index="epoch", columns=["policy", "seed"], values="val_acc").dropna()
    means = table.T.groupby(level="policy").mean().T
    epochs, final = int(means.index.max()), means.iloc[-1]
    policies = list(final.sort_values(ascending=False).index)
    pairs = [(a, b) for a, b in combinations(policies, 2) if abs(final[a] - final[b]) > min_gap]
    focus_pairs = [(a, b) for a, b in pairs if a in focus and b in focus]
    seeds = sorted(set(df.groupby("policy")["seed"].nunique()))
    lines = [f"## {folder} ({epochs} epochs, seeds per policy: {'/'.join(map(str, seeds))}, "
             f"{len(pairs)} pairs with final gap > {min_gap})", "",
             "| f | epoch | ranking at f (mean val acc) | = final | pairs kept | flipped (final order) |",
             "|---|---|---|---|---|---|"]
    grid_ok, focus_ok = [], []
    for f in fractions:
        target = max(1, math.floor(f * epochs + Fraction(1, 2)))
        epoch = int(means.index[means.index >= target][0])
        at = means.loc[epoch]
        ranking = " > ".join(f"{p} {at[p]:.4f}" for p in at.sort_values(ascending=False).index)
        same = list(at.sort_values(ascending=False).index) == policies
        bad = flipped(at, final, pairs)
        grid_ok.append(not bad)
        focus_ok.append(not flipped(at, final, focus_pairs))
        lines.append(f"| {fmt(f)} | {epoch} | {ranking} | {'yes' if same else 'no'} | "
                     f"{len(pairs) - len(bad)}/{len(pairs)} | {', '.join(bad) or '-'} |")
    every = [not flipped(means.loc[e], final, pairs) for e in means.index]
    safe_epoch = safe_from(list(means.index), every)
    safe_grid, safe_focus = safe_from(fractions, grid_ok), safe_from(fractions, focus_ok)
    focus_note = fmt(safe_focus) if safe_focus and focus_pairs else "-"
    lines += ["", f"summary: safe from f = {fmt(safe_grid) if safe_grid else 'never'} on the grid "
              f"({len(focus_pairs)} of them among {', '.join(focus)}: {focus_note}); "
              f"on every validated epoch from epoch {safe_epoch} (f = {safe_epoch / epochs:.2f})", ""]
    return "\n".join(lines), safe_grid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", type=Path, help="report folders")
    p.add_argument("--fractions", nargs="+", type=Fraction, default=[Fraction(x) for x in FRACTIONS.split()])
    p.add_argument("--min-gap", type=float, default=0.003, help="final mean gap above which a pair must keep order")
    p.add_argument("--focus", nargs="+", default=FOCUS.split(), help="policies whose mutual order matters most")
    args = p.parse_args()
    fractions, safe = sorted(args.fractions), []
    for folder in args.reports:
        df = load(folder)
        if df.empty:
            p.error(f"{folder}: no validation histories")
        text, first = analyse(folder, df, fractions, args.min_gap, args.focus)
        print(text)
        safe.append(first)
    counts = [sum(first is not None and first <= f for first in safe) for f in fractions]
    print("overall, reports in which every checked pair keeps its final order from f on: "
          + ", ".join(f"f = {fmt(f)}: {n}/{len(safe)}" for f, n in zip(fractions, counts, strict=True)))


if __name__ == "__main__":
    main()
