"""Small statistics helpers for results over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

from autoaug.errors import AutoaugError


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std of no values")
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, s


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of ``a`` against ``b``: mean difference ``a - b`` and its 95% confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def verdict(self) -> str:
        """``better`` (interval above 0), ``worse`` (below 0) or ``no significant difference``."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no significant difference"

    def __str__(self) -> str:
        if self.n == 1:
            return f"{self.mean:+.4f} (n = 1: no interval): {self.verdict}"
        return f"{self.mean:+.4f} [95% CI {self.low:+.4f}, {self.high:+.4f}] (n = {self.n}): {self.verdict}"


def compare_paired(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Compare ``a`` with ``b`` paired by position (the same seed): Student t interval, ``n - 1`` degrees of freedom.

    With a single pair the interval is ``(-inf, inf)``: no significant difference can be claimed.
    """
    if len(a) != len(b):
        raise AutoaugError(f"cannot pair {len(a)} results with {len(b)}: give one result per seed on both sides")
    if len(a) == 0:
        raise AutoaugError("cannot compare empty results: give at least one result per side")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    if not all(math.isfinite(d) for d in diffs):
        raise AutoaugError(f"cannot compare non-finite results: differences {diffs}")
    n = len(diffs)
    mean, sd = mean_std(diffs)
    if n == 1:
        return Comparison(mean, -math.inf, math.inf, n)
    half = float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return Comparison(mean, mean - half, mean + half, n)
