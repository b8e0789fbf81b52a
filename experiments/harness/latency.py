"""Latency per emitted unit and query: a replay log joined with a build's commit log.

DESIGN.md, "Measurement definitions" and "The commit log": the latency of a unit for a
query is the first `visible_at` whose `max_seq` covers the unit (>= its last_seq), minus
the unit's intended emission time. The replayer is open-loop, so the intended time (not
the actual one) is the start: a replayer that falls behind cannot hide latency.

The replay log (experiments/inputs/schedule.py) gives each unit's `intended_s` in seconds since the
schedule's start, and replay_summary.json that start as `start_epoch_s` (wall clock), so
intended_at = start_epoch_s + intended_s, on the same clock as the builds' `visible_at`
(time.time() on the same machine).

"First" means first in time: a query's commits are ordered by visible_at. A unit no commit
covers (the run ended first) is reported with visible_at and latency_s None, not dropped.
Warm-up and percentiles are the report's business; this only pairs units with commits.
"""

from __future__ import annotations

import bisect
import csv
import os
from collections.abc import Iterable, Sequence
from itertools import accumulate
from pathlib import Path
from typing import NamedTuple

from experiments.inputs.schedule import LOG_CSV_NAME, read_replay_summary
from shared.commit_log import Commit, read_commits

LATENCY_COLUMNS = ("unit", "query", "intended_at", "visible_at", "latency_s")


class EmittedUnit(NamedTuple):
    unit: int
    first_seq: int
    last_seq: int
    intended_at: float  # UTC epoch seconds


class UnitLatency(NamedTuple):
    unit: int
    query: str
    intended_at: float
    visible_at: float | None
    latency_s: float | None


def read_emitted_units(replay_log_dir: str | os.PathLike) -> list[EmittedUnit]:
    """The replay's units with absolute intended times, in emission order."""
    directory = Path(replay_log_dir)
    start_epoch_s = float(read_replay_summary(directory)["start_epoch_s"])
    with open(directory / LOG_CSV_NAME, encoding="utf-8", newline="") as handle:
        return [
            EmittedUnit(int(r["unit"]), int(r["first_seq"]), int(r["last_seq"]), start_epoch_s + float(r["intended_s"]))
            for r in csv.DictReader(handle)
        ]


def commits_by_query(commits: Iterable[Commit]) -> dict[str, list[Commit]]:
    """Each query's commits in time order (stable: equal times keep the log's order)."""
    grouped: dict[str, list[Commit]] = {}
    for commit in commits:
        grouped.setdefault(commit.query, []).append(commit)
    return {query: sorted(rows, key=lambda c: c.visible_at) for query, rows in grouped.items()}


def first_covering(commits_in_time_order: list[Commit], last_seqs: Iterable[int]) -> list[Commit | None]:
    """For each last_seq, the first commit whose max_seq >= it (None if none does).

    The running maximum of max_seq is non-decreasing, and the first commit whose own
    max_seq reaches a value is exactly where the running maximum first reaches it, so a
    binary search over the running maximum finds it.
    """
    reached = list(accumulate((c.max_seq for c in commits_in_time_order), max))
    found = []
    for last_seq in last_seqs:
        index = bisect.bisect_left(reached, last_seq)
        found.append(commits_in_time_order[index] if index < len(reached) else None)
    return found


def unit_latencies(units: list[EmittedUnit], commits: Iterable[Commit]) -> list[UnitLatency]:
    """One row per unit and query (queries in name order, units in log order)."""
    rows = []
    for query, query_commits in sorted(commits_by_query(commits).items()):
        covering = first_covering(query_commits, (unit.last_seq for unit in units))
        for unit, commit in zip(units, covering):
            visible_at = None if commit is None else commit.visible_at
            latency = None if commit is None else commit.visible_at - unit.intended_at
            rows.append(UnitLatency(unit.unit, query, unit.intended_at, visible_at, latency))
    return rows


def read_latencies(replay_log_dir: str | os.PathLike, commit_log: str | os.PathLike) -> list[UnitLatency]:
    """Latency of every emitted unit for every query a build's commit log names."""
    return unit_latencies(read_emitted_units(replay_log_dir), read_commits(commit_log))


def latency_frame(rows: list[UnitLatency]):
    """The rows as a pandas DataFrame (uncovered units have NaN visible_at and latency_s)."""
    import pandas as pd

    return pd.DataFrame.from_records(rows, columns=LATENCY_COLUMNS)


def max_seq_decreases(commits: Iterable[Commit]) -> list[tuple[Commit, Commit]]:
    """(earlier, later) pairs of consecutive commits of one query, in time order, where
    max_seq went down: a result that forgets input it had included. Empty when sound."""
    return [
        (earlier, later)
        for rows in commits_by_query(commits).values()
        for earlier, later in zip(rows, rows[1:])
        if later.max_seq < earlier.max_seq
    ]


def latest_over_queries(
    rows: Iterable[UnitLatency], units: list[EmittedUnit], queries: Iterable[str]
) -> list[float | None]:
    """Per unit, in `units` order: the latest over `queries` of its latency, i.e. when the
    last of them made it visible (None when some query never covered it)."""
    wanted = set(queries)
    by_unit: dict[int, dict[str, float | None]] = {}
    for row in rows:
        if row.query in wanted:
            by_unit.setdefault(row.unit, {})[row.query] = row.latency_s
    result = []
    for unit in units:
        values = by_unit.get(unit.unit, {})
        latencies = [v for v in values.values() if v is not None]
        covered = set(values) == wanted and len(latencies) == len(values)
        result.append(max(latencies) if covered else None)
    return result


def slowest_query_latencies(
    replay_log_dir: str | os.PathLike, commit_log: str | os.PathLike, queries: Iterable[str]
) -> list[float | None]:
    """Per emitted unit, in order: the latest over `queries` of the first commit covering
    it, minus its intended emission time (None when some query never covered it)."""
    queries = tuple(queries)
    units = read_emitted_units(replay_log_dir)
    rows = unit_latencies(units, [c for c in read_commits(commit_log) if c.query in set(queries)])
    return latest_over_queries(rows, units, queries)


def covered_at(commits, queries: Sequence[str], seq: int, after: float) -> float | None:
    """The first moment after `after` when every query has a commit covering `seq`."""
    times = []
    for query in queries:
        found = [c.visible_at for c in commits if c.query == query and c.max_seq >= seq and c.visible_at >= after]
        if not found:
            return None
        times.append(min(found))
    return max(times)
