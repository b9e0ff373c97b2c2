"""End to end, before and after: the same ``autoaug search ... --budget small`` plus its report at two commits.

Run mode checks out each commit into a worktree under ``--work`` and runs the same command from a folder of
its own, one after the other, with this virtual environment (``PYTHONPATH`` points at the worktree):

    python benchmarks/bench_end_to_end.py --before 3885386 --after HEAD --work /tmp/e2e --out reports/benchmarks.md

``--summarize`` only reads two such folders (``search.log`` with its closing ``wall_s``, the report's
``runs.json``) and writes the comparison: wall time of the search and of the report, per-run training and
evaluation seconds with the CPU share each run got, and test accuracy of the compared presets paired by
policy and seed (the precision changed between the two: float32 before, bfloat16 after on AMX CPUs).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from autoaug.stats import compare_paired, mean_std

COMMAND = ["-m", "autoaug", "search", "fashion_mnist_small", "--budget", "small", "--storage", "runs",
           "--reports", "reports"]


def run(rev: str, work: Path) -> Path:
    """Check ``rev`` out into ``work/src-REV`` and run the command from ``work/run-REV``; the run folder."""
    src, folder = work / f"src-{rev}", work / f"run-{rev}"
    subprocess.run(["git", "worktree", "add", "-f", str(src), rev], check=True, capture_output=True)
    folder.mkdir(parents=True)
    log = folder / "search.log"
    import os
    import time

    t0 = time.perf_counter()
    with log.open("w") as f:
        code = subprocess.run([sys.executable, *COMMAND], cwd=folder, stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(src)}).returncode
    with log.open("a") as f:
        f.write(f"rc={code} wall_s={time.perf_counter() - t0:.0f}\n")
    return folder


def read(folder: Path) -> dict:
    """Wall times, the search's share of them, and the report's records of a run folder."""
    text = (folder / "search.log").read_text()
    wall = float(re.search(r"^rc=0 wall_s=(\d+)", text, re.M).group(1))
    report = max((folder / "reports").glob("*/runs.json"))
    data = json.loads(report.read_text())
    search_s = data["search"]["wall_seconds"]
    return {"wall": wall, "search": search_s, "rest": wall - search_s, "records": data["records"],
            "report": report.parent}


def summarize(before: Path, after: Path, labels: tuple[str, str]) -> str:
    a, b = read(before), read(after)
    lines = [f"| | {labels[0]} | {labels[1]} | ratio |", "|---|---|---|---|"]
    for key, what in (("search", "search (s)"), ("rest", "report: final training and evaluation (s)"),
                      ("wall", "**end to end (s)**")):
        lines.append(f"| {what} | {a[key]:,.0f} | {b[key]:,.0f} | **{a[key] / b[key]:.2f}x** |")
    for side, r in (("before", a), ("after", b)):
        runs = [x for x in r["records"] if "error" not in x]
        tr, ev = mean_std([x["train_seconds"] for x in runs])[0], mean_std([x.get("eval_seconds", float("nan"))
                                                                             for x in runs])[0]
        cpu = mean_std([x["cpu_util"] for x in runs])
        lines.append(f"| {side}: per final run, training s (mean) / evaluation s / CPU share (mean ± std) | "
                     f"{tr:.0f} / {ev:.1f} / {cpu[0]:.2f} ± {cpu[1]:.2f} | | |")
    # accuracy of the presets both reports trained: the same policies, seeds and data, another precision
    acc = {(s, x["policy"], x["seed"]): x["test"]["acc"] for s, r in (("a", a), ("b", b)) for x in r["records"]
           if "error" not in x and x["policy"] != "searched"}
    keys = sorted({(p, s) for _, p, s in acc if ("a", p, s) in acc and ("b", p, s) in acc})
    diff = compare_paired([acc["b", p, s] for p, s in keys], [acc["a", p, s] for p, s in keys])
    lines += ["", f"Test accuracy, after - before, paired by policy and seed over the {len(keys)} runs both reports "
                  f"trained ({', '.join(sorted({p for p, _ in keys}))} x seeds {sorted({s for _, s in keys})}): "
                  f"{diff}.", "",
              f"Reports: `{a['report']}` and `{b['report']}`."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="3885386")
    p.add_argument("--after", default="HEAD")
    p.add_argument("--work", type=Path, default=Path("/tmp/autoaug-e2e"))
    p.add_argument("--summarize", nargs=2, type=Path, metavar=("BEFORE_DIR", "AFTER_DIR"), default=None)
    p.add_argument("--note", default="", help="a sentence on the conditions, written under the table")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.summarize:
        before, after = args.summarize
    else:
        before, after = run(args.before, args.work), run(args.after, args.work)
    body = "\n".join([
        "Command, at both commits: `autoaug search fashion_mnist_small --budget small` (12 trials, up to 30 epochs "
        "of convnet on 4,000 images, then the report: 5 policies x 3 seeds), one after the other on the same "
        "machine (`python benchmarks/bench_end_to_end.py --before REV --after REV`).", "",
        summarize(before, after, (f"before ({args.before})", f"after ({args.after})")), "", args.note])
    print(body)
    if args.out is not None:
        write_section(args.out, "End to end: a small search and its report", body)


if __name__ == "__main__":
    main()
