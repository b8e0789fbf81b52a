"""The lab's statistics, one module for the steps, `lab bench` and the report: percentiles,
a trend and its test, and the spread of repeated runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    return float(np.percentile(np.asarray(values, dtype=float), q, method="inverted_cdf"))


def trend_per_minute(times_s: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of `values` over time, per minute."""
    if len(values) < 3 or max(times_s) - min(times_s) <= 0:
        return None
    slope, _intercept = np.polyfit(np.asarray(times_s, dtype=float), np.asarray(values, dtype=float), 1)
    return float(slope * 60)


def rising_p(times_s: Sequence[float], values: Sequence[float]) -> float | None:
    """One-sided p of a Mann-Kendall trend test (scipy's Kendall's tau of value against time):
    how likely values at least this steadily rising would be if they did not rise at all."""
    from scipy.stats import kendalltau

    if len(values) < 3:
        return None
    return float(kendalltau(times_s, values, alternative="greater").pvalue)


@dataclass
class Spread:
    """Repeated runs' figure: their median, lowest and highest, and how many there were."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        return cls(statistics.median(values), min(values), max(values), len(values)) if values else None

    def text(self, digits: int = 2, unit: str = "") -> str:
        return f"{self.median:.{digits}f}{unit} ({self.low:.{digits}f}-{self.high:.{digits}f}, n={self.n})"


@dataclass(frozen=True)
class LinearFit:
    """y = intercept + slope x, by least squares, with the residuals of the points it was fitted to."""

    intercept: float
    slope: float
    xs: tuple[float, ...]
    residuals: tuple[float, ...]  # y - fitted, per point

    @classmethod
    def of(cls, xs: Sequence[float], ys: Sequence[float]) -> LinearFit | None:
        """None without two distinct x values (no line is determined)."""
        if len(xs) != len(ys) or len(set(xs)) < 2:
            return None
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        slope, intercept = np.polyfit(x, y, 1)
        return cls(float(intercept), float(slope), tuple(map(float, x)), tuple(map(float, y - (intercept + slope * x))))

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x

    def worst_relative_residual(self) -> float:
        """The largest |residual| as a share of the fitted value at its point (0 for an exact fit)."""
        shares = [abs(r) / abs(self.at(x)) for x, r in zip(self.xs, self.residuals) if self.at(x)]
        return max(shares, default=0.0)
