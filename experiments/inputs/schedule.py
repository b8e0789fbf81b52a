"""The replayer's open-loop schedule, its emission log and its summary.

The replayer is open-loop (docs/design.md, "How each figure is defined"): the schedule is
fixed before the first emission (the unit starting at line L is due at start + L / rate),
each unit's intended and actual emission times are logged, and a replayer that falls behind
emits late units at once without moving later ones: latency counted from the intended time
cannot hide the replayer's own delays (coordinated omission). With no rate every unit is
due at the start (an infinite rate: the whole input is a backlog), so the lag column shows
how long the backlog took to emit. The process's CPU time over the emission phase is
recorded too, since the replayer shares the machine with the system under test.
`ReplayRun` is one replay (to a landing directory or to Kafka: experiments/inputs/replay.py,
experiments/inputs/kafka_replay.py) from its schedule to its summary.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import resource
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from experiments.inputs.stream import FILE_ORDER, ProgressCallback, SalesFile
from experiments.stats import percentile
from shared.atomic import atomic_text

LOG_CSV_NAME = "replay_log.csv"
LOG_JSON_NAME = "replay_summary.json"
LOG_COLUMNS = ("unit", "first_seq", "last_seq", "lines", "source_file", "target", "intended_s", "emitted_s")


def validated_rate(rate: float | None) -> float | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate_lines_per_second must be a positive number or None, got {rate!r}")
    return float(rate)


class RateStep(NamedTuple):
    """One step of a stepped schedule: `lines` lines emitted at `rate` lines per second."""

    rate: float
    lines: int


def parse_rate_steps(text: str) -> tuple[RateStep, ...]:
    """`RATE:LINES,RATE:LINES,...` (e.g. "100:1000,200:2000") as rate steps."""
    steps = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        rate, sep, lines = part.partition(":")
        try:
            step = RateStep(float(rate), int(lines))
        except ValueError:
            step = None
        if not sep or step is None or not math.isfinite(step.rate) or step.rate <= 0 or step.lines <= 0:
            raise ValueError(
                f"bad rate step {part!r}: write RATE:LINES with a positive rate and line count, "
                "steps separated by commas (e.g. 100:1000,200:2000)"
            )
        steps.append(step)
    if not steps:
        raise ValueError("no rate steps given: write RATE:LINES,... (e.g. 100:1000,200:2000)")
    return tuple(steps)


class OpenLoopSchedule:
    """Intended times fixed in advance: the unit starting at global line L is due at
    start + L / rate (start + 0 without a rate). Falling behind never moves them.

    With `steps` (a stepped load, one rate after another): step i emits its `lines` lines
    at its rate from its own start, which is the previous step's start plus its lines /
    rate plus `gap_s` of silence (so a backlog left by one step can drain before the next);
    lines past the last step go on at the last rate. A unit belongs to the step of its first
    line. `phases` records each step's first seq and start for the replay summary.

    `first_seq`: the global seq of the first line emitted (a replay of a slice of the
    input's files starts its clock there; seqs stay those of the whole input)."""

    def __init__(
        self,
        rate_lines_per_second: float | None,
        steps: Iterable[RateStep] | None = None,
        gap_s: float = 0.0,
        first_seq: int = 0,
    ):
        self.rate = validated_rate(rate_lines_per_second)
        self.phases: list[dict] | None = None
        self.base_seq = first_seq  # the global seq the schedule's start is due at (a slice of the input)
        if steps is not None:
            if self.rate is not None:
                raise ValueError("give either a rate or rate steps, not both")
            if not math.isfinite(gap_s) or gap_s < 0:
                raise ValueError(f"the gap between rate steps must be 0 or more seconds, got {gap_s!r}")
            self.phases, start_s = [], 0.0
            for step in steps:
                rate = validated_rate(step.rate)
                assert rate is not None  # a step's rate is a number
                self.phases.append(
                    {
                        "step": len(self.phases),
                        "rate": rate,
                        "first_seq": first_seq,
                        "lines": int(step.lines),
                        "start_s": start_s,
                    }
                )
                first_seq += int(step.lines)
                start_s += step.lines / rate + gap_s
            if not self.phases:
                raise ValueError("rate steps: at least one step is needed")
        self.start_monotonic = time.monotonic()
        self.start_wall = time.time()

    def intended_s(self, first_seq: int) -> float:
        if self.phases is not None:
            phase = next(p for p in reversed(self.phases) if p["first_seq"] <= first_seq or p["step"] == 0)
            return phase["start_s"] + max(0, first_seq - phase["first_seq"]) / phase["rate"]
        return 0.0 if self.rate is None else max(0, first_seq - self.base_seq) / self.rate

    def elapsed_s(self) -> float:
        return time.monotonic() - self.start_monotonic

    def wait_until(self, intended_s: float) -> None:
        """Sleep while ahead of the schedule; when behind, return at once (emit late)."""
        while (remaining := intended_s - self.elapsed_s()) > 0:
            time.sleep(remaining)


class UnitRecord(NamedTuple):
    unit: int
    first_seq: int
    last_seq: int  # first_seq - 1 for a unit without lines (an empty file)
    lines: int
    source_file: str
    target: str
    intended_s: float  # seconds since the replay's start (time.monotonic)
    emitted_s: float

    @property
    def lag_s(self) -> float:
        return self.emitted_s - self.intended_s


class ReplayLog:
    """One row per emitted unit; written as CSV next to a JSON summary."""

    def __init__(self) -> None:
        self.records: list[UnitRecord] = []

    def add(self, record: UnitRecord) -> None:
        self.records.append(record)

    def lag_stats(self) -> dict[str, float | None]:
        lags = sorted(record.lag_s for record in self.records)
        if not lags:
            return {"max_s": None, "p99_s": None, "p50_s": None}
        return {"max_s": lags[-1], "p99_s": percentile(lags, 99), "p50_s": percentile(lags, 50)}

    def write(self, log_dir: str | os.PathLike, summary: dict) -> tuple[Path, Path]:
        directory = Path(log_dir)
        directory.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = directory / LOG_CSV_NAME, directory / LOG_JSON_NAME
        with atomic_text(csv_path) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(LOG_COLUMNS)
            for record in self.records:
                times = {"intended_s": f"{record.intended_s:.6f}", "emitted_s": f"{record.emitted_s:.6f}"}
                writer.writerow((record._asdict() | times).values())  # the fields, times as text
        with atomic_text(json_path) as handle:
            json.dump(summary, handle, indent=2)
            handle.write("\n")
        return csv_path, json_path


def read_replay_summary(log_dir: str | os.PathLike) -> dict:
    """The JSON summary `ReplayLog.write` left in `log_dir` (its start, rate steps, CPU and lag)."""
    return json.loads((Path(log_dir) / LOG_JSON_NAME).read_text(encoding="utf-8"))


@dataclass
class ReplaySummary:
    mode: str  # "landing" or "kafka"
    input_dir: str
    target: str  # the landing directory, or "bootstrap/topic"
    rate_lines_per_second: float | None
    files: int
    units: int
    lines: int
    started_utc: str  # wall clock at the schedule's start
    start_epoch_s: float  # the same instant as a Unix time (emitted wall time = this + emitted_s)
    start_monotonic_s: float  # and as time.monotonic(), comparable across processes of this machine
    duration_s: float  # start to the last emission (Kafka: to the last acknowledgement)
    lag_max_s: float | None  # emitted - intended, over units
    lag_p99_s: float | None
    lag_p50_s: float | None
    cpu_seconds: float  # user + system CPU of this process during the replay
    cpu_user_s: float
    cpu_system_s: float
    peak_rss_mib: float  # the process's peak resident memory so far
    log_csv: str | None = None
    log_json: str | None = None
    topic: str | None = None
    partitions: int | None = None  # the topic's actual partition count
    topic_created: bool | None = None
    notes: list[str] = field(default_factory=list)
    order: str = FILE_ORDER  # "file" or "event-time" (see the module docstring)
    rate_steps: list[dict] | None = None  # a stepped schedule: each step's rate, first_seq, lines, start_s

    def to_json(self) -> dict:
        return asdict(self)


class CpuMeter:
    """CPU time of this whole process (every thread, librdkafka's included) since start."""

    def __init__(self) -> None:
        self.started = resource.getrusage(resource.RUSAGE_SELF)

    def used(self) -> dict[str, float]:
        now = resource.getrusage(resource.RUSAGE_SELF)
        user, system = now.ru_utime - self.started.ru_utime, now.ru_stime - self.started.ru_stime
        return {
            "cpu_seconds": user + system,
            "cpu_user_s": user,
            "cpu_system_s": system,
            "peak_rss_mib": now.ru_maxrss / 1024,
        }  # Linux reports KiB


class ReplayRun:
    """What both targets share: the schedule, the log, progress and the summary."""

    def __init__(
        self,
        mode: str,
        input_dir,
        target: str,
        rate,
        files: list[SalesFile],
        progress: ProgressCallback | None,
        order: str = FILE_ORDER,
        rate_steps: Iterable[RateStep] | None = None,
        step_gap_s: float = 0.0,
    ):
        self.mode, self.input_dir, self.target = mode, str(Path(input_dir).expanduser().resolve()), target
        self.files = files
        self.order = order
        self.total_lines = sum(f.lines for f in files)
        self.progress = progress
        self.log = ReplayLog()
        self.done_lines = 0
        self.cpu = CpuMeter()
        # the clock starts here, after all set-up
        self.schedule = OpenLoopSchedule(rate, rate_steps, step_gap_s, files[0].first_seq if files else 0)

    def wait_for(self, first_seq: int) -> float:
        intended = self.schedule.intended_s(first_seq)
        self.schedule.wait_until(intended)
        return intended

    def record(self, unit: int, first_seq: int, lines: int, source: str, target: str, intended_s: float) -> None:
        self.log.add(
            UnitRecord(
                unit, first_seq, first_seq + lines - 1, lines, source, target, intended_s, self.schedule.elapsed_s()
            )
        )
        self.done_lines += lines
        if self.progress:
            self.progress(self.done_lines, self.total_lines)

    def summary(self, **kafka_fields) -> ReplaySummary:
        lags = self.log.lag_stats()
        cpu: dict[str, Any] = self.cpu.used()  # ReplaySummary's cpu fields, by name
        return ReplaySummary(
            mode=self.mode,
            input_dir=self.input_dir,
            target=self.target,
            rate_lines_per_second=self.schedule.rate,
            files=len(self.files),
            units=len(self.log.records),
            lines=self.done_lines,
            started_utc=utc_text(self.schedule.start_wall),
            start_epoch_s=self.schedule.start_wall,
            start_monotonic_s=self.schedule.start_monotonic,
            duration_s=self.schedule.elapsed_s(),
            lag_max_s=lags["max_s"],
            lag_p99_s=lags["p99_s"],
            lag_p50_s=lags["p50_s"],
            order=self.order,
            rate_steps=self.schedule.phases,
            **cpu,
            **kafka_fields,
        )

    def finish(self, log_dir, **kafka_fields) -> ReplaySummary:
        summary = self.summary(**kafka_fields)
        if self.progress and not self.log.records:  # otherwise the last record reported it
            self.progress(self.done_lines, self.total_lines)
        if log_dir is not None:
            directory = Path(log_dir).resolve()
            summary.log_csv, summary.log_json = str(directory / LOG_CSV_NAME), str(directory / LOG_JSON_NAME)
            self.log.write(directory, {**summary.to_json(), "completed": True, "error": None})
        return summary

    def abandon(self, log_dir, error: BaseException, **kafka_fields) -> None:
        """Keep the log of what did go out, marked incomplete, then let the error propagate."""
        if log_dir is None:
            return
        summary = self.summary(**kafka_fields).to_json()
        self.log.write(log_dir, {**summary, "completed": False, "error": f"{type(error).__name__}: {error}"})


def utc_text(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="milliseconds")
