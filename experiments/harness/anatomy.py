"""Anatomy of a live micro-batch: where each streaming query of a follow run spends a batch.

Read from what the run wrote, after it ended (no listener of the harness's own in the build):
- Spark's progress reports (shared/progress_log.py, `<query>.jsonl` under a `progress/`
  folder of the build's workdir): `durationMs` splits each micro-batch into finding new
  input (`latestOffset`: for the file source, listing the landing directory), planning the
  batch (`getBatch`, `queryPlanning`), writing its offsets (`walCommit`), running its sink
  (`addBatch`) and committing it in the checkpoint (`commitOffsets`); what
  `triggerExecution` holds beyond those is `other`;
- the build's own step timings inside a foreachBatch sink (`<query>.steps.jsonl`,
  shared/progress_log.BatchSteps): `addBatch` is split into them (parse, partial
  aggregates, each Delta commit, the commit-log row ...), the rest of it being `sink
  other`. DStream has no progress reports: its batches are its step timings alone.

Each part is the median over the query's micro-batches that started during the measured
passes (the warm-up, probe and recovery passes are left out), one metrics.csv row per build,
streaming query and part (`batch_<part>_ms`, step latency): what the report's "anatomy of a
live micro-batch" chart stacks, a bar per streaming query.
"""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from typing import cast

from experiments.harness.run_folder import Metric
from shared.progress_log import STEPS_SUFFIX, read_progress

STEP = "latency"
# Spark's durationMs keys in the order a micro-batch runs them, with the part each one is.
SPARK_PARTS = (
    ("latestOffset", "find_input"),
    ("getBatch", "plan"),
    ("queryPlanning", "plan"),
    ("walCommit", "offsets_log"),
    ("addBatch", "sink"),
    ("commitOffsets", "checkpoint_commit"),
)
METRIC_PREFIX, METRIC_SUFFIX = "batch_", "_ms"


def _started_at(record: dict) -> float | None:
    """Epoch seconds a batch started: a progress report's `timestamp`, a step record's `startedAt`."""
    if "startedAt" in record:
        return float(record["startedAt"])
    if "timestamp" in record:
        return dt.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
    return None


def batch_parts(progress: dict | None, steps: dict | None) -> dict[str, float]:
    """One micro-batch's parts in ms, from its progress report and/or its step timings."""
    parts: dict[str, float] = {}
    if progress is not None:
        durations = progress.get("durationMs", {})
        for key, part in SPARK_PARTS:
            parts[part] = parts.get(part, 0.0) + float(durations.get(key, 0))
        parts["other"] = max(0.0, float(durations.get("triggerExecution", 0)) - sum(parts.values()))
    if steps is not None:
        timed = {f"sink_{name}": float(ms) for name, ms in steps.get("stepsMs", {}).items()}
        if progress is not None:
            sink = parts.pop("sink")
            timed["sink_other"] = max(0.0, sink - sum(timed.values()))
        parts.update(timed)
    return parts


def query_batches(progress_dir: Path, name: str, since: float, until: float) -> list[dict[str, float]]:
    """The parts of each micro-batch of streaming query `name` (its files in `progress_dir`)
    that started within [since, until]."""
    reports = read_progress(progress_dir / f"{name}.jsonl")
    steps = {r["batchId"]: r for r in read_progress(progress_dir / f"{name}{STEPS_SUFFIX}.jsonl")}
    # a query timed by steps alone (DStream), or by Spark with the steps of its sink beside
    pairs = (
        [(None, step) for step in steps.values()]
        if not reports
        else [(report, steps.get(report["batchId"])) for report in reports]
    )
    return [
        batch_parts(report, step)
        for report, step in pairs
        if since <= (_started_at(cast(dict, report or step)) or -1.0) <= until
    ]  # one of the two is set


def streaming_queries(workdir: Path) -> list[tuple[Path, str]]:
    """(progress folder, query name) of every streaming query a follow run recorded."""
    found = set()
    for path in Path(workdir).glob("**/progress/*.jsonl"):
        name = path.name[: -len(".jsonl")]
        name = name[: -len(STEPS_SUFFIX)] if name.endswith(STEPS_SUFFIX) else name
        if "." not in name:  # not a drain's phase file (run.phases)
            found.add((path.parent, name))
    return sorted(found)


def anatomy_metrics(build: str, workdir: Path, since: float, until: float, input_lines: int) -> list[Metric]:
    """Median parts of each streaming query's micro-batches in [since, until] (epoch s)."""
    metrics = []
    for folder, name in streaming_queries(workdir):
        batches = query_batches(folder, name, since, until)
        if not batches:
            continue
        parts = sorted({part for batch in batches for part in batch})
        for part in parts:
            values = [batch.get(part, 0.0) for batch in batches]
            metrics.append(
                Metric(
                    STEP,
                    build,
                    f"{METRIC_PREFIX}{part}{METRIC_SUFFIX}",
                    round(statistics.median(values), 1),
                    "ms",
                    query=name,
                    repeat=1,
                    input_lines=input_lines,
                    detail=f"median over the {len(batches)} micro-batches of {name} that started "
                    "in the measured passes (Spark's progress reports, the build's step "
                    "timings)",
                )
            )
    return metrics


def part_of(metric: str) -> str | None:
    """The part a `batch_<part>_ms` metric names (None for any other metric)."""
    if metric.startswith(METRIC_PREFIX) and metric.endswith(METRIC_SUFFIX):
        return metric[len(METRIC_PREFIX) : -len(METRIC_SUFFIX)]
    return None
