"""experiments/stats.py: the percentiles, the trend and its test, the spread of repeats."""

import pytest

from experiments import stats
from experiments.harness.live_figures import RISING_P


def test_percentiles_are_nearest_rank_and_the_trend_is_a_slope():
    values = list(range(1, 101))
    assert stats.percentile(values, 50) == 50 and stats.percentile(values, 95) == 95
    assert stats.percentile(values, 100) == 100
    assert stats.trend_per_minute([0, 30, 60], [1, 2, 3]) == pytest.approx(2.0)
    assert stats.trend_per_minute([0, 1], [1, 2]) is None


def test_the_rising_test_tells_a_backlog_from_a_stall_and_from_a_swing():
    """Commit lags measured on 2026-11-27: DStream at 400 lines/s (a backlog), the pass-through
    after a one-off stall at 50 lines/s, Kappa's swing at 400 lines/s."""
    times = [9.9, 14.6, 18.7, 23.0, 27.1, 31.7, 35.8, 38.9]
    backlog = [5.40, 5.88, 6.16, 6.33, 6.73, 7.13, 7.52, 8.40]
    assert stats.rising_p(times, backlog) < RISING_P
    stall = [0.47, 0.37, 0.32, 1.36, 1.30, 1.27, 1.23]
    assert stats.rising_p(times[:7], stall) > 0.2
    assert stats.trend_per_minute(times[:7], stall) > 0  # the least-squares slope alone would call it a rise
    swing = [8.47, 10.77, 11.42, 8.48, 8.49]
    assert stats.rising_p(times[:5], swing) > 0.2
    assert stats.rising_p([1.0, 2.0], [1.0, 2.0]) is None


def test_a_spread_is_the_median_and_the_range_of_the_repeats():
    spread = stats.Spread.of([4.0, 2.75, 5.0])
    assert (spread.median, spread.low, spread.high, spread.n) == (4.0, 2.75, 5.0, 3)
    assert spread.text(1, " s") == "4.0 s (2.8-5.0, n=3)"
    assert stats.Spread.of([]) is None


def test_a_linear_fit_is_least_squares_with_its_residuals():
    from experiments.stats import LinearFit

    exact = LinearFit.of([1_000, 10_000, 100_000], [11.0, 20.0, 110.0])
    assert exact is not None and exact.intercept == pytest.approx(10.0) and exact.slope == pytest.approx(0.001)
    assert exact.worst_relative_residual() == pytest.approx(0.0, abs=1e-9)
    noisy = LinearFit.of([0, 1, 2, 3], [1.0, 3.0, 5.0, 9.0])  # y = 0.6 + 2.6 x by least squares
    assert noisy is not None and (noisy.intercept, noisy.slope) == (pytest.approx(0.6), pytest.approx(2.6))
    assert noisy.residuals == pytest.approx((0.4, -0.2, -0.8, 0.6))
    assert noisy.worst_relative_residual() == pytest.approx(0.4 / 0.6)  # at x = 0 the line is at 0.6
    assert LinearFit.of([5, 5], [1.0, 2.0]) is None  # one size: no line
