"""What a selection on fewer fresh seeds loses: in the committed reports, every policy trained on the same seeds, so
each seed (and each pair of seeds) is a selection that could have been made. For each, pick the policy with the best
final validation accuracy (mean over the seeds used), and measure its regret: the best mean test accuracy over all
the report's seeds minus the picked policy's. A selection on 1 seed against one on 2 seeds, per report. (In the
reports made before the report had seeds of its own, the searched policy's runs on seeds 1 and 2 are the selection
runs that picked it, so its validation scores there lean its way.)

    python scripts/selection_seeds.py reports/*/runs.json --out reports/selection-seeds.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
from pathlib import Path


def scores(path: Path) -> tuple[dict[str, dict[int, float]], dict[str, float]]:
    """(policy -> seed -> final validation accuracy, policy -> mean test accuracy) of one report's runs, restricted
    to the seeds every policy has."""
    records = json.loads(path.read_text())["records"]
    val: dict[str, dict[int, float]] = {}
    test: dict[str, dict[int, float]] = {}
    for r in records:
        last = [h for h in r["history"] if "val_acc" in h]
        if last:
            val.setdefault(r["policy"], {})[r["seed"]] = last[-1]["val_acc"]
            test.setdefault(r["policy"], {})[r["seed"]] = r["test"]["acc"]
    common = set.intersection(*(set(v) for v in val.values())) if val else set()
    val = {p: {s: v[s] for s in sorted(common)} for p, v in val.items()}
    return val, {p: sum(t[s] for s in common) / len(common) for p, t in test.items() if common}


def regrets(val: dict[str, dict[int, float]], test: dict[str, float], k: int) -> list[float]:
    """The regret of each selection on ``k`` of the seeds."""
    best = max(test.values())
    seeds = sorted(next(iter(val.values())))
    out = []
    for chosen in itertools.combinations(seeds, k):
        pick = max(val, key=lambda p: sum(val[p][s] for s in chosen))
        out.append(best - test[pick])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = ["| report | policies | seeds | regret, 1 seed (mean, worst) | regret, 2 seeds (mean, worst) |",
            "|---|---|---|---|---|"]
    pooled: dict[int, list[float]] = {1: [], 2: []}
    for path in args.runs:
        val, test = scores(path)
        n = len(next(iter(val.values()), {}))
        if len(val) < 2 or n < 3:
            continue
        cells = []
        for k in (1, 2):
            r = regrets(val, test, k)
            pooled[k] += r
            cells.append(f"{sum(r) / len(r):.4f}, {max(r):.4f}")
        rows.append(f"| {path.parent.name} | {len(val)} | {n} | {cells[0]} | {cells[1]} |")
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    summary = [f"- {k} seed{'s' * (k > 1)}: mean regret {sum(r) / len(r):.4f} over {len(r)} selections, "
               f"{sum(x > 0 for x in r)} of them picking a policy other than the best on test"
               for k, r in pooled.items() if r]
    lines = ["# Selection on 1 or 2 fresh seeds", "", " ".join(__doc__.split("\n\n")[0].split()), "",
             *rows, "", *summary, "",
             f"Reproduce: `python scripts/selection_seeds.py {' '.join(map(str, args.runs))} --out {args.out}`",
             "", f"Read from the committed runs (no training) at git {rev}; Python {platform.python_version()}."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
