"""Time ``make demo`` as a newcomer sees it: every output line stamped, then the time to the first line, the longest
wait between two lines and the total, after the install (run ``make .venv/bin/.installed`` first).

    .venv/bin/python benchmarks/time_demo.py  # in a fresh clone; writes nothing but make demo's own outputs
"""

from __future__ import annotations

import argparse
import subprocess
import time
from itertools import pairwise

from autoaug.machine import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="demo", help="make target (default: demo)")
    args = parser.parse_args()
    start = time.perf_counter()
    stamps: list[tuple[float, str]] = []
    with subprocess.Popen(["make", args.target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            stamps.append((time.perf_counter() - start, line.rstrip()))
            print(f"[{stamps[-1][0]:7.1f} s] {line.rstrip()}", flush=True)
    if proc.returncode:
        raise SystemExit(f"make {args.target} failed with exit code {proc.returncode}")
    gaps = [(b[0] - a[0], b[1]) for a, b in pairwise(stamps)]
    longest = max(gaps, default=(0.0, ""))
    print(f"\nfirst line after {stamps[0][0]:.1f} s; longest wait {longest[0]:.1f} s (before: {longest[1][:80]!r}); "
          f"total {stamps[-1][0]:.1f} s ({stamps[-1][0] / 60:.1f} min) on {describe()}")


if __name__ == "__main__":
    main()
