"""The soak's figures (the soak step: experiments/harness/soak_step.py), as the report reads
them too: per window of a soak, from the units' latencies, the process tree's samples and the
Delta tables' file counts, its rows; then the two verdicts against their targets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from experiments.harness.live_figures import UnitRow
from experiments.harness.measure import Sample
from experiments.harness.run_folder import ALL_QUERIES, Metric
from experiments.stats import percentile

STEP = "soak"
P99_GROWTH_MAX = 1.2  # the last window's p99 over the first window's
RSS_GROWTH_MAX = 0.10  # the last window's memory over the second window's, minus one
NEVER_VISIBLE = "never visible"  # in the words of a p99 verdict that a backlog failed (the report reads them)


@dataclass(frozen=True)
class FileCount:
    at_epoch_s: float
    table: str  # relative to the build's workdir
    files: int


def _window_row(
    build: str, window: int, words: str, input_lines: int, rate: float, metric: str, value, unit: str, query="", note=""
) -> Metric:
    return Metric(STEP, build, metric, value, unit, query, window, input_lines, rate, words + note)


def window_metrics(
    build: str,
    rows: Sequence[UnitRow],
    samples: Sequence[Sample],
    file_counts: Sequence[FileCount],
    replay_start: float,
    window_s: float,
    rate: float,
    input_lines: int,
) -> list[Metric]:
    """The per-window rows (see the module doc): window k covers the units due, and the samples
    taken, from (k-1) x window_s to k x window_s after the measured replay started; a tail
    shorter than half a window belongs to the last window (a 30-minute replay ends a few
    seconds past its sixth window), and samples after the last unit was due (the drain and the
    stop) belong to none."""
    units = [r for r in rows if r.query == ALL_QUERIES]
    if not units:
        return []
    last_due = max(r.intended_s for r in units)
    windows = max(1, round(last_due / window_s))
    metrics = []
    for k in range(1, windows + 1):
        low, high = (k - 1) * window_s, (k * window_s if k < windows else last_due + 1e-9)
        words = f"window {k}: minutes {low / 60:.3g}-{high / 60:.3g} of the replay"
        row = partial(_window_row, build, k, words, input_lines, rate)
        latencies = sorted(r.latency_s for r in units if low <= r.intended_s < high and r.latency_s is not None)
        uncovered = sum(1 for r in units if low <= r.intended_s < high and r.latency_s is None)
        metrics.append(row("units", len(latencies) + uncovered, "units", ALL_QUERIES))
        if uncovered:
            metrics.append(row("uncovered", uncovered, "units", ALL_QUERIES))
        if latencies:
            metrics += [
                row(name, round(percentile(latencies, q), 4), "s", ALL_QUERIES)
                for name, q in (("latency_p50_s", 50), ("latency_p99_s", 99))
            ]
        inside = [s for s in samples if low <= s.at_epoch_s - replay_start < high]  # the last: up to its last unit
        if inside:
            rss = round(statistics.median(s.rss_mb for s in inside), 1)
            metrics.append(row("rss_mb", rss, "MiB", note=", median of its samples"))
        if len(inside) >= 2 and inside[-1].at_epoch_s > inside[0].at_epoch_s:
            cores = (inside[-1].cpu_s - inside[0].cpu_s) / (inside[-1].at_epoch_s - inside[0].at_epoch_s)
            metrics.append(row("cpu_cores", round(cores, 3), "cores", note=", CPU seconds per second"))
        last: dict[str, FileCount] = {}
        for count in file_counts:
            if low <= count.at_epoch_s - replay_start < high:
                last[count.table] = count
        metrics += [
            row("delta_files", count.files, "files", table, ", at its last sample")
            for table, count in sorted(last.items())
        ]
    return metrics


def growth_metrics(build: str, windows: Sequence[Metric], rate: float, input_lines: int) -> list[Metric]:
    """The soak's two verdict rows from its windows: p99 of the last window over the first,
    memory of the last window over the second (after the first five minutes)."""
    common: dict = dict(input_lines=input_lines, rate_lps=rate)
    by = lambda metric: {m.repeat: m.value for m in windows if m.metric == metric and m.value is not None}
    p99, rss, units, uncovered = by("latency_p99_s"), by("rss_mb"), by("units"), by("uncovered")
    rows = []
    final = max(units, default=None)
    if final is not None and uncovered.get(final):
        # a backlog that never drained: the last window has no p99, and the verdict is not met
        rows.append(
            Metric(
                STEP,
                build,
                "p99_growth",
                None,
                "x",
                ALL_QUERIES,
                detail=f"window {final}: {uncovered[final]} of {units[final]} units {NEVER_VISIBLE} before the stop "
                f"(the build fell behind); target <= {P99_GROWTH_MAX:g}",
                **common,
            )
        )
    elif len(p99) >= 2:
        first, last = min(p99), max(p99)
        ratio = p99[last] / p99[first] if p99[first] else None
        rows.append(
            Metric(
                STEP,
                build,
                "p99_growth",
                None if ratio is None else round(ratio, 3),
                "x",
                ALL_QUERIES,
                detail=f"p99 of window {last} ({p99[last]:.2f} s) over window {first} ({p99[first]:.2f} s); "
                f"target <= {P99_GROWTH_MAX:g}",
                **common,
            )
        )
    if len(rss) >= 3:
        second, last = sorted(rss)[1], max(rss)
        rows.append(
            Metric(
                STEP,
                build,
                "rss_growth",
                round(rss[last] / rss[second] - 1, 4),
                "share",
                detail=f"memory of window {last} ({rss[last]:.0f} MiB) over window {second} ({rss[second]:.0f} MiB), "
                f"after the first window; target < {RSS_GROWTH_MAX:.0%}",
                **common,
            )
        )
    return rows
