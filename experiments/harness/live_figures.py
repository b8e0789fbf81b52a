"""What a live run's units and commits say, for every step that replays into a follow run
(latency, throughput, recovery) and for the report: one row per unit and query with its
latency, the figures per rate step, and whether latency stayed bounded at a rate.

Percentiles are nearest-rank (numpy's `inverted_cdf`): p95 is a latency some unit had.
Whether latency stayed bounded at a rate is read from the commits, not from the units: a
micro-batch makes many units visible at once, so unit latencies are a saw-tooth of the batch
period, and a trend over one or two teeth follows where the batches fall, not a backlog. The
lag of a commit is its time minus the intended time of the newest unit it made visible (how
fresh the results it published were); its trend over the step's commits (least squares,
seconds of lag gained per minute, and a Mann-Kendall test of whether it rose commit after
commit) says whether a backlog built up (`bounded`), and a step that spans too few of the
build's commits is not judged.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.harness.latency import EmittedUnit, latest_over_queries, read_emitted_units, unit_latencies
from experiments.harness.run_folder import ALL_QUERIES, Metric
from experiments.inputs.schedule import read_replay_summary
from experiments.stats import percentile, rising_p, trend_per_minute
from shared.commit_log import read_commits

WARMUP_STEPS = 1  # a standalone live run's first rate step (Profile.start_warmup_s), in no figure


UNIT_COLUMNS = ("unit", "first_seq", "last_seq", "step", "rate_lps", "intended_s", "warmup", "query", "latency_s")
PERCENTILES = (("latency_p50_s", 50), ("latency_p95_s", 95), ("latency_p99_s", 99), ("latency_max_s", 100))


# Latency stayed bounded at a rate unless a unit never became visible or the lag of the step's
# commits kept rising: rose by more than RISE_FLOOR_S, or RISE_SHARE of their median lag if
# larger, over the step (least squares), and rose commit after commit (a Mann-Kendall test:
# Kendall's tau of lag against time, one-sided p below RISING_P). The second condition keeps
# two kinds of noise out: a build's lag swings by about one micro-batch from commit to commit
# (Kappa's between 8.5 and 17.4 s within one step), and a one-off stall lifts every later lag
# once (the pass-through's 0.3 -> 1.3 s at 50 lines/s in one run) without a backlog building.
RISE_FLOOR_S = 1.0
RISE_SHARE = 0.2
RISING_P = 0.05
# Fewer commits than this in a step: too few to see a trend in (at 4, lags rising at every
# commit give p = 1/24), so the rate is not judged; a step must span several of the build's commits.
MIN_COMMITS = 4
# Lag falling by this share of a second or more per second of the step: the commits were
# catching up with units that waited for the same late commit (the build was starting or
# stalled, not processing), so the step says nothing about the rate; it is not judged.
STALL_SHARE = 0.9


def bounded(
    trend_s_per_min: float | None,
    rising_p: float | None,
    lag_p50_s: float | None,
    commits: int,
    uncovered: int,
    step_seconds: float,
) -> tuple[bool | None, str]:
    """Did latency stay bounded over one rate step? (True, False, or None when there is too
    little to judge) and the reason in words. The step's commits (CommitLag): how many, their
    lag's least-squares trend, the p of its rising (`rising_p`) and their median lag."""
    if uncovered:
        return False, f"{uncovered} units never visible before the run was stopped"
    if commits < MIN_COMMITS or trend_s_per_min is None or rising_p is None:
        return None, (
            f"{commits} commit{'s' if commits != 1 else ''} made its units visible: fewer than "
            f"{MIN_COMMITS}, too few for a trend (the step must span several of the build's micro-batches)"
        )
    if trend_s_per_min <= -STALL_SHARE * 60:
        return None, (
            f"lag trend {trend_s_per_min:+.2f} s/min: the commits caught up with units that waited for "
            f"the same late commit (the build was starting or stalled), so the step says nothing about "
            f"the rate"
        )
    rise = trend_s_per_min * step_seconds / 60
    limit = max(RISE_FLOOR_S, RISE_SHARE * (lag_p50_s or 0.0))
    rising = rise > limit and rising_p < RISING_P
    words = (
        f"lag of its {commits} commits {'kept rising' if rising else 'did not keep rising'}: "
        f"{rise:+.2f} s over the {step_seconds:g} s step ({trend_s_per_min:+.2f} s/min; a backlog adds more "
        f"than {limit:.2f} s, {RISE_FLOOR_S:g} s or {RISE_SHARE:.0%} of the median lag {lag_p50_s or 0:.2f} s) "
        f"and Kendall's p {rising_p:.3f} (rising commit after commit below {RISING_P:g})"
    )
    return not rising, words


@dataclass(frozen=True)
class UnitRow:
    unit: int
    first_seq: int
    last_seq: int
    step: int
    rate_lps: float
    intended_s: float  # since the replay's start
    warmup: bool
    query: str
    latency_s: float | None


@dataclass(frozen=True)
class CommitLag:
    """A commit that made units visible (latest over the queries), as the units show it."""

    at_s: float  # since the replay's start
    lag_s: float  # at_s minus the intended time of the newest unit it made visible
    step: int  # that newest unit's rate step
    rate_lps: float
    warmup: bool  # that newest unit was in a warm-up


# Units whose results became visible within this of each other were made visible by one commit
# (the unit rows keep milliseconds; a build's commits are a second or more apart).
SAME_COMMIT_S = 0.05


def commit_lags(rows: Sequence[UnitRow]) -> list[CommitLag]:
    """The commits behind the `all` rows of one replay, in time order. A commit belongs to the
    step of the newest unit it made visible (not of every unit it covered: a commit that also
    finishes the step before is that much fresher than its oldest unit shows)."""
    shown = sorted(
        ((r.intended_s + r.latency_s, r) for r in rows if r.query == ALL_QUERIES and r.latency_s is not None),
        key=lambda pair: pair[0],
    )
    groups: list[list[tuple[float, UnitRow]]] = []
    for at, row in shown:
        if groups and at - groups[-1][-1][0] <= SAME_COMMIT_S:
            groups[-1].append((at, row))
        else:
            groups.append([(at, row)])
    lags = []
    for group in groups:
        at = max(a for a, _ in group)
        newest = max((r for _, r in group), key=lambda r: r.intended_s)
        lags.append(
            CommitLag(round(at, 3), round(at - newest.intended_s, 4), newest.step, newest.rate_lps, newest.warmup)
        )
    return lags


def phase_of(unit: EmittedUnit, phases: list[dict]) -> dict:
    return next((p for p in reversed(phases) if p["first_seq"] <= unit.first_seq), phases[0])


def unit_rows(
    replay_dir: Path, commit_log: Path, queries: Sequence[str], warmup_s: float, warmup_steps: int = 0
) -> list[UnitRow]:
    """One row per unit and query (and `all`), tagged with its rate step and warm-up: due in
    the first `warmup_s` of its step, or in one of the first `warmup_steps` steps."""
    summary = read_replay_summary(replay_dir)
    start = float(summary["start_epoch_s"])
    phases = summary.get("rate_steps") or [
        {"step": 0, "rate": summary.get("rate_lines_per_second") or 0, "first_seq": 0, "start_s": 0.0}
    ]
    units = read_emitted_units(replay_dir)
    wanted = set(queries)
    pairs = unit_latencies(units, [c for c in read_commits(commit_log) if c.query in wanted])
    latest = latest_over_queries(pairs, units, queries)
    by_unit = {u.unit: u for u in units}
    rows = []

    def row(unit: EmittedUnit, query: str, latency: float | None) -> UnitRow:
        phase = phase_of(unit, phases)
        intended_s = unit.intended_at - start
        return UnitRow(
            unit.unit,
            unit.first_seq,
            unit.last_seq,
            int(phase["step"]),
            float(phase["rate"]),
            round(intended_s, 3),
            int(phase["step"]) < warmup_steps or intended_s - float(phase["start_s"]) < warmup_s,
            query,
            None if latency is None else round(latency, 4),
        )

    for pair in pairs:
        rows.append(row(by_unit[pair.unit], pair.query, pair.latency_s))
    for query in sorted(wanted - {p.query for p in pairs}):  # a query with no commit at all: every unit uncovered
        rows += [row(unit, query, None) for unit in units]
    rows += [row(unit, ALL_QUERIES, value) for unit, value in zip(units, latest)]
    return rows


def write_unit_rows(path: Path, rows: list[UnitRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(UNIT_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r.unit,
                    r.first_seq,
                    r.last_seq,
                    r.step,
                    f"{r.rate_lps:g}",
                    f"{r.intended_s:.3f}",
                    int(r.warmup),
                    r.query,
                    "" if r.latency_s is None else f"{r.latency_s:.4f}",
                ]
            )


def read_unit_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def latency_metrics(
    build: str,
    rows: list[UnitRow],
    repeat: int,
    input_lines: int,
    warmup_s: float,
    step_name: str = "latency",
    warmup_steps: int = 0,
) -> list[Metric]:
    """Per rate step and query: percentiles over the measured units, counts, and (for `all`)
    the step's commits and their lag. `step_name`: the metrics.csv step the rows belong to;
    the first `warmup_steps` steps (the warm-up before the rates) have no rows."""
    metrics = []
    lags = commit_lags(rows)
    groups: dict[tuple[int, float, str], list[UnitRow]] = {}
    for r in rows:
        if r.step >= warmup_steps:
            groups.setdefault((r.step, r.rate_lps, r.query), []).append(r)
    for (step, rate, query), members in sorted(groups.items()):
        measured = [r for r in members if not r.warmup]
        covered = [r for r in measured if r.latency_s is not None]
        common: dict[str, Any] = dict(query=query, repeat=repeat, input_lines=input_lines, rate_lps=rate)
        how = (
            f"rate step {step + 1 - warmup_steps}; {len(covered)} units after a {warmup_s:g} s warm-up; nearest rank"
            + ("; latest over queries per unit" if query == ALL_QUERIES else "")
        )
        if covered:
            values = [r.latency_s for r in measured if r.latency_s is not None]  # covered's latencies
            metrics += [
                Metric(step_name, build, name, round(percentile(values, q), 4), "s", detail=how, **common)
                for name, q in PERCENTILES
            ]
        metrics += [
            Metric(step_name, build, "units_measured", len(covered), "units", detail=how, **common),
            Metric(
                step_name,
                build,
                "units_warmup",
                len(members) - len(measured),
                "units",
                detail=f"due in the first {warmup_s:g} s of the step",
                **common,
            ),
            Metric(
                step_name,
                build,
                "units_uncovered",
                len(measured) - len(covered),
                "units",
                detail="no commit covered them before the run was stopped",
                **common,
            ),
        ]
        if query == ALL_QUERIES:
            metrics += commit_metrics(step_name, build, [c for c in lags if c.step == step and not c.warmup], common)
    return metrics


def commit_metrics(step_name: str, build: str, lags: Sequence[CommitLag], common: dict) -> list[Metric]:
    """One rate step's commits: how many, their median lag, its trend and the p of its rising
    (what `bounded` judges)."""
    how = "commits that made the step's measured units visible; lag = commit time - newest unit's intended time"
    metrics = [Metric(step_name, build, "commits_measured", len(lags), "commits", detail=how, **common)]
    if lags:
        metrics.append(
            Metric(
                step_name,
                build,
                "commit_lag_p50_s",
                round(percentile([c.lag_s for c in lags], 50), 4),
                "s",
                detail=how + "; nearest rank",
                **common,
            )
        )
    if len(lags) < MIN_COMMITS:  # a slope over fewer follows where the batches fell: no figure that reads as one
        return metrics
    times, values = [c.at_s for c in lags], [c.lag_s for c in lags]
    trend = trend_per_minute(times, values)
    if trend is not None:
        metrics.append(
            Metric(
                step_name,
                build,
                "commit_lag_trend_s_per_min",
                round(trend, 4),
                "s per min",
                detail="least-squares slope of the commits' lag over the step",
                **common,
            )
        )
    rising = rising_p(times, values)
    assert rising is not None  # at least MIN_COMMITS (4) lags here; rising_p needs 3
    metrics.append(
        Metric(
            step_name,
            build,
            "commit_lag_rising_p",
            round(rising, 5),
            "p",
            detail="Mann-Kendall: one-sided p of Kendall's tau of the commits' lag against time",
            **common,
        )
    )
    return metrics


def replayer_metrics(
    step: str, build: str, summary: dict, repeat: int, input_lines: int, query: str = ""
) -> list[Metric]:
    """The replayer's own CPU and its lag behind the open-loop schedule, from one replay's summary."""
    return [
        Metric(
            step,
            build,
            "replayer_cpu_s",
            round(summary["cpu_seconds"], 3),
            "s",
            query=query,
            repeat=repeat,
            input_lines=input_lines,
            detail="the replayer process's own CPU while it emitted",
        ),
        Metric(
            step,
            build,
            "replay_lag_max_s",
            round(summary["lag_max_s"] or 0, 4),
            "s",
            query=query,
            repeat=repeat,
            input_lines=input_lines,
            detail="latest emission behind its intended time (counted in latency)",
        ),
    ]


def rate_steps_over_files(
    live_input: Path, rates: Sequence[float], files_per_step: Sequence[int], first: int = 0
) -> list[tuple[float, int]]:
    """(rate, raw lines) per step: `files_per_step[i]` files of the input, in name order from
    file `first`, at `rates[i]` (the live inputs are generated with exactly those files)."""
    from shared.inputs import inspect_input
    from shared.raw_lines import count_raw_lines

    files = inspect_input(live_input).sales_files
    per_step = list(files_per_step)
    if first + sum(per_step) > len(files):
        raise ValueError(
            f"{live_input} has {len(files)} sales files, fewer than the {first + sum(per_step)} the rate steps need"
        )
    steps = []
    for rate, count in zip(rates, per_step):
        steps.append((rate, sum(count_raw_lines(p) for p in files[first : first + count])))
        first += count
    return steps


@dataclass(frozen=True)
class Judged:
    rate: float
    ok: bool | None  # bounded, unbounded, or not judged
    why: str


def judge(metrics: list[Metric], rates: Sequence[float], step_seconds: float) -> list[Judged]:
    """Each rate of one probe, from its `all` rows; rates after the first unbounded one carry
    its backlog and are not judged."""

    def value(name: str, rate: float):
        found = [m.value for m in metrics if m.metric == name and m.query == ALL_QUERIES and m.rate_lps == rate]
        return found[0] if found else None

    return judge_values(value, rates, step_seconds)


def judge_values(
    value: Callable[[str, float], float | None], rates: Sequence[float], step_seconds: float
) -> list[Judged]:
    """`judge` over any source of the figures: value(metric, rate)."""
    verdicts, overloaded = [], None
    for rate in rates:
        if overloaded is not None:
            verdicts.append(Judged(rate, None, f"after the unbounded {overloaded:g} lines/s, with its backlog"))
            continue
        ok, why = bounded(
            value("commit_lag_trend_s_per_min", rate),
            value("commit_lag_rising_p", rate),
            value("commit_lag_p50_s", rate),
            int(value("commits_measured", rate) or 0),
            int(value("units_uncovered", rate) or 0),
            step_seconds,
        )
        verdicts.append(Judged(rate, ok, why))
        if ok is False:
            overloaded = rate
    return verdicts


def read_verdict(row: dict, label: str = "") -> Judged:
    """A `bounded` row of metrics.csv (`verdict_rows`) as the verdict it records; `label` before its why."""
    return Judged(
        float(row["rate_lps"]), None if row["value"] == "" else row["value"] == "1", f"{label}{row['detail']}"
    )


def verdict_rows(step: str, build: str, verdicts: Sequence[Judged], repeat: int) -> list[Metric]:
    """A step's `bounded` rows: 1 bounded, 0 not, empty when not judged; why in the detail."""
    return [
        Metric(
            step,
            build,
            "bounded",
            None if v.ok is None else int(v.ok),
            "1 = bounded",
            query=ALL_QUERIES,
            repeat=repeat,
            rate_lps=v.rate,
            detail=v.why,
        )
        for v in verdicts
    ]
