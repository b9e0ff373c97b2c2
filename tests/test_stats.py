from __future__ import annotations

import math

import pytest

from autoaug.errors import AutoaugError
from autoaug.stats import Comparison, compare_paired, mean_std

# Student t quantiles t(0.975, df) from tables.
T_2 = 4.302653
T_3 = 3.182446


def test_mean_std_uses_sample_deviation() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([5.0]) == (5.0, 0.0)


def test_better_when_the_interval_is_above_zero() -> None:
    # differences [0.01, 0.02, 0.02]: mean 0.05/3, sd sqrt(((-1/150)^2 + 2 (1/300)^2) / 2) = 0.005774
    c = compare_paired([0.91, 0.92, 0.93], [0.90, 0.90, 0.91])
    mean, sd = 0.05 / 3, 0.0057735027
    half = T_2 * sd / math.sqrt(3)
    assert half == pytest.approx(0.014343, abs=1e-6)
    assert (c.mean, c.low, c.high, c.n) == pytest.approx((mean, 0.002324, 0.031009, 3), abs=1e-6)
    assert (c.low, c.high) == pytest.approx((mean - half, mean + half), abs=1e-6)
    assert c.verdict == "better"
    assert str(c) == "+0.0167 [95% CI +0.0023, +0.0310] (n = 3): better"


def test_worse_when_the_interval_is_below_zero() -> None:
    # differences [-0.03, -0.02, -0.03, -0.04]: mean -0.03, sd sqrt(2e-4 / 3) = 0.0081650, half 3.182446 * sd / 2
    c = compare_paired([0.80, 0.82, 0.81, 0.79], [0.83, 0.84, 0.84, 0.83])
    half = T_3 * 0.0081649658 / 2
    assert half == pytest.approx(0.012992, abs=1e-6)
    assert (c.mean, c.low, c.high, c.n) == pytest.approx((-0.03, -0.042992, -0.017008, 4), abs=1e-6)
    assert c.verdict == "worse"


def test_no_significant_difference_when_the_interval_holds_zero() -> None:
    # differences [-0.01, 0.02, 0.0]: mean 0.01/3, sd sqrt(7e-4 / 3) = 0.0152753, half 0.037946
    c = compare_paired([0.90, 0.92, 0.91], [0.91, 0.90, 0.91])
    assert (c.mean, c.low, c.high) == pytest.approx((0.003333, -0.034612, 0.041279), abs=1e-6)
    assert c.verdict == "no significant difference"


def test_pairs_by_position() -> None:
    # the seeds spread the results widely, but a beats b by exactly 0.01 on every seed
    c = compare_paired([0.80, 0.90, 0.70], [0.79, 0.89, 0.69])
    assert (c.low, c.high) == pytest.approx((0.01, 0.01), abs=1e-9)
    assert c.verdict == "better"
    assert compare_paired([0.80, 0.90, 0.70], [0.69, 0.89, 0.79]).verdict == "no significant difference"


def test_a_single_pair_has_no_interval() -> None:
    c = compare_paired([0.95], [0.50])
    assert c == Comparison(mean=pytest.approx(0.45), low=-math.inf, high=math.inf, n=1)
    assert c.verdict == "no significant difference"
    assert str(c) == "+0.4500 (n = 1: no interval): no significant difference"


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([0.9, 0.8], [0.9], "cannot pair 2 results with 1"),
        ([], [], "cannot compare empty results"),
        ([0.9, float("nan")], [0.8, 0.8], "cannot compare non-finite results"),
    ],
)
def test_bad_input_raises_one_clear_line(a: list[float], b: list[float], message: str) -> None:
    with pytest.raises(AutoaugError, match=message) as info:
        compare_paired(a, b)
    assert "\n" not in str(info.value)
