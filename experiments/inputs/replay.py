"""The replayer: an input directory's sales files become an arriving stream at a chosen rate.

Two targets (shared/DESIGN.md, "Inputs, replay and the landing directory"):

- a landing directory: one unit = one sales file, copied under a hidden temporary name
  (`.<name>.tmp`, which Spark's file source and `textFileStream` ignore) and renamed into
  place, so it appears whole. The landed name `{seq:06d}-{original name}` makes name order
  emission order.
- a Kafka topic: one message per raw line (docs/data-rules.md: every physical line,
  headers and blank lines included), key = source file name, headers `seq` (the line's
  global 0-based sequence number) and `file_seq` (its file's 0-based sequence number, the
  same number the landing directory puts in front of the file name). Lines are produced in
  chunks, one schedule unit each.

Sequence numbers: `seq` always means the global line sequence (line i of the emitted
stream), in both modes; a log row's first_seq..last_seq is the line range a unit carries,
so a result that records the highest seq it includes can be matched to the units it covers
whichever target was used.

Order (`order`): "file" (the default) emits the files in name order, each file's lines as
they are, so line i of the stream is line i of the input read in name order. "event-time"
emits every line sorted by its Order Date (see `event_time_order`): for an input whose
file names are not in time order (monthly exports named April, August, December, ...),
which would put most lines behind an event-time build's watermark. Landing files then
hold the sorted lines, cut to the sizes of the input files (`{seq:06d}-event-time.csv`);
Kafka messages keep their own file as key and `file_seq`.

The replayer is open-loop (DESIGN.md, "Measurement definitions"): the schedule is fixed
before the first emission (the unit starting at line L is due at start + L / rate), each
unit's intended and actual emission times are logged, and a replayer that falls behind
emits late units at once without moving later ones: latency counted from the intended
time cannot hide the replayer's own delays (coordinated omission). With no rate every unit
is due at the start (an infinite rate: the whole input is a backlog), so the lag column
shows how long the backlog took to emit. The process's CPU time over the emission phase is
recorded too, since the replayer shares the machine with the system under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
import resource
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from experiments.stats import percentile
from shared import raw_lines as shared_raw_lines
from shared.atomic import atomic_text, copy_file_atomic, write_bytes_atomic
from shared.inputs import inspect_input
from shared.kafka import BROKER_PATIENCE_S, check_broker, unavailable
from shared.kafka import KafkaUnavailableError as BrokerUnavailable

ProgressCallback = Callable[[int, int], None]

LOG_CSV_NAME = "replay_log.csv"
LOG_JSON_NAME = "replay_summary.json"
LOG_COLUMNS = ("unit", "first_seq", "last_seq", "lines", "source_file", "target", "intended_s", "emitted_s")

LANDING_SEQ_WIDTH = 6
MAX_KAFKA_CHUNK_LINES = 1000
# With a rate, a Kafka chunk spans about this much schedule time, so lines inside a chunk
# are never more than ~10 ms early (one chunk = a burst of lines emitted together).
KAFKA_CHUNK_SECONDS = 0.01
KAFKA_LINGER_MS = 5
# A message not acknowledged within this fails: as long as the builds wait for a broker that
# went away (shared/kafka.BROKER_PATIENCE_S) and a minute more, so a replay rides out any
# outage that they ride out.
KAFKA_DELIVERY_TIMEOUT_MS = int(BROKER_PATIENCE_S * 1000) + 60_000
KAFKA_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
FILE_ORDER, EVENT_TIME_ORDER = "file", "event-time"
ORDERS = (FILE_ORDER, EVENT_TIME_ORDER)


class ReplayError(RuntimeError):
    """The replay could not start or did not complete."""


class KafkaUnavailableError(ReplayError, BrokerUnavailable):
    """The Kafka broker cannot be reached."""


class KafkaDeliveryError(ReplayError):
    """Some messages were not acknowledged by the broker."""


# ---------------------------------------------------------------------------------------
# Raw lines (docs/data-rules.md): \n, \r\n and \r end a line; a final ending adds no line
# ---------------------------------------------------------------------------------------

iter_raw_lines = shared_raw_lines.iter_raw_lines  # any bytes make lines: never a bad file
count_raw_lines = shared_raw_lines.count_raw_lines


class _SalesFile(NamedTuple):
    file_seq: int
    path: Path
    lines: int
    first_seq: int  # global seq of its first line (= lines in the files before it)


def _sales_files(input_dir) -> list[_SalesFile]:
    """The input's sales files in name order with their line counts, read before the clock
    starts so that counting never delays an emission."""
    files, lines_before = [], 0
    for file_seq, path in enumerate(inspect_input(input_dir).sales_files):
        lines = count_raw_lines(path)
        files.append(_SalesFile(file_seq, path, lines, lines_before))
        lines_before += lines
    return files


class _Line(NamedTuple):
    sales: _SalesFile  # the input file it comes from
    raw: bytes  # as read: replayed byte for byte, UTF-8 or not

    @property
    def text(self) -> str:
        return shared_raw_lines.decoded(self.raw)


def _validated_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    return order


def _lines_in_order(files: list[_SalesFile], order: str) -> Iterable[_Line]:
    """Every raw line, in emission order: read lazily in file order; in event-time order
    sorted at once (call it before the clock starts)."""
    if order == EVENT_TIME_ORDER:
        return event_time_order(files)
    return (_Line(sales, raw) for sales in files for raw in shared_raw_lines.iter_raw_line_bytes(sales.path))


def event_time_order(files: list[_SalesFile]) -> list[_Line]:
    """Every raw line of the files, the valid ones sorted by Order Date (parsed by the
    oracle's rules, docs/data-rules.md).

    Lines without an Order Date to go by (headers, blank and quarantined lines) go first, in
    input order: they move no result and no watermark, so their place is only a matter of
    being well defined, and first keeps every header ahead of the data. The sort is stable:
    lines of the same minute keep their input order (an exact duplicate stays right after
    its original). The whole input is held in memory: a sort needs all of it.
    """
    from experiments.reference.oracle import classify_line  # pandas: only imported when sorting

    def event_time(line: _Line) -> tuple[bool, dt.datetime]:
        record, _reason = classify_line(line.text)
        return (False, dt.datetime.min) if record is None else (True, record["order_ts"])

    return sorted(_lines_in_order(files, FILE_ORDER), key=event_time)


def _source_names(lines: list[_Line]) -> str:
    """The input files a unit's lines come from, for its log row (one in file order)."""
    return ";".join(sorted({line.sales.path.name for line in lines}))


# ---------------------------------------------------------------------------------------
# The open-loop schedule, the emission log and the summary
# ---------------------------------------------------------------------------------------


def _validated_rate(rate: float | None) -> float | None:
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
        self.rate = _validated_rate(rate_lines_per_second)
        self.phases: list[dict] | None = None
        self.base_seq = first_seq  # the global seq the schedule's start is due at (a slice of the input)
        if steps is not None:
            if self.rate is not None:
                raise ValueError("give either a rate or rate steps, not both")
            if not math.isfinite(gap_s) or gap_s < 0:
                raise ValueError(f"the gap between rate steps must be 0 or more seconds, got {gap_s!r}")
            self.phases, start_s = [], 0.0
            for step in steps:
                rate = _validated_rate(step.rate)
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


class _CpuMeter:
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


class _Run:
    """What both targets share: the schedule, the log, progress and the summary."""

    def __init__(
        self,
        mode: str,
        input_dir,
        target: str,
        rate,
        files: list[_SalesFile],
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
        self.cpu = _CpuMeter()
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
            started_utc=_utc_text(self.schedule.start_wall),
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


def _utc_text(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------------------
# Landing directory: one file per unit, atomic appearance
# ---------------------------------------------------------------------------------------


def replay_to_landing(
    input_dir: str | os.PathLike,
    landing_dir: str | os.PathLike,
    rate_lines_per_second: float | None = None,
    *,
    log_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    order: str = FILE_ORDER,
    rate_steps: Iterable[RateStep] | None = None,
    step_gap_s: float = 0.0,
    file_slice: tuple[int, int] | None = None,
) -> ReplaySummary:
    """Land each sales file of `input_dir` in `landing_dir` as `{seq:06d}-{name}`, file k
    when its first line is due (start + lines before k / rate; all at once without a rate).

    `file_slice` (first, end): only the input's files first..end-1 (name order), with the
    seqs and landed names they have in the whole input, the schedule starting at the
    first one: several replays of consecutive slices into one landing directory are one
    stream, each with its own open-loop schedule (the harness waits between them).

    With order="event-time" landing file k holds the next lines of the input sorted by
    `event_time_order`, as many as input file k has, named `{seq:06d}-event-time.csv`:
    the units, their seq ranges and the schedule stay those of file order.

    `rate_steps` (instead of a rate) is a stepped load: see OpenLoopSchedule.

    The landing directory is created if missing; it must not already hold a file of the
    same name (a file source would skip or misread a rewritten file). The input's catalogue
    and shipments are placed in it first (land_reference_data).
    """
    rate = _validated_rate(rate_lines_per_second)  # before anything is created
    rate_steps = tuple(rate_steps) if rate_steps is not None else None
    OpenLoopSchedule(rate, rate_steps, step_gap_s)  # refuses a bad schedule before anything is created
    order = _validated_order(order)
    files = _sales_files(input_dir)
    units = _landing_units(files, order)  # sorted before the clock starts
    if file_slice is not None:
        files, units = _sliced(files, file_slice), _sliced(units, file_slice)
    landing = _prepared_landing(input_dir, landing_dir, [unit.name for unit in units])
    land_reference_data(input_dir, landing)
    run = _Run("landing", input_dir, str(landing), rate, files, progress, order, rate_steps, step_gap_s)
    try:
        for unit in units:
            intended = run.wait_for(unit.first_seq)
            target = landing / unit.name
            _land(unit, target)
            run.record(unit.unit, unit.first_seq, unit.lines, unit.source_file, target.name, intended)
    except BaseException as error:
        run.abandon(log_dir, error)
        raise
    return run.finish(log_dir)


def _sliced(items: list, file_slice: tuple[int, int]) -> list:
    first, end = file_slice
    if not 0 <= first < end <= len(items):
        raise ValueError(f"file slice {first}:{end} is not within the input's {len(items)} sales files")
    return items[first:end]


class _LandingUnit(NamedTuple):
    unit: int
    first_seq: int
    lines: int
    source_file: str  # the input file it copies, or the input files its lines come from
    name: str  # its name in the landing directory
    copy_of: Path | None  # file order: the input file, copied byte for byte
    lines_raw: list[bytes] | None  # event-time order: the lines to write


def _landing_units(files: list[_SalesFile], order: str) -> list[_LandingUnit]:
    # Wider than six digits only past a million files, so name order stays emission order.
    width = max(LANDING_SEQ_WIDTH, len(str(len(files) - 1)))
    if order == FILE_ORDER:
        return [
            _LandingUnit(
                f.file_seq, f.first_seq, f.lines, f.path.name, f"{f.file_seq:0{width}d}-{f.path.name}", f.path, None
            )
            for f in files
        ]
    lines = event_time_order(files)
    units = []
    for f in files:
        unit_lines = lines[f.first_seq : f.first_seq + f.lines]
        units.append(
            _LandingUnit(
                f.file_seq,
                f.first_seq,
                f.lines,
                _source_names(unit_lines),
                f"{f.file_seq:0{width}d}-event-time.csv",
                None,
                [line.raw for line in unit_lines],
            )
        )
    return units


def _land(unit: _LandingUnit, target: Path) -> None:
    """Write one unit as `.<name>.tmp` in the landing folder, then rename it into place."""
    if unit.copy_of is not None:
        copy_file_atomic(unit.copy_of, target)
        return
    assert unit.lines_raw is not None  # not a copy: its lines are kept
    # each line ends with \n, so a file holds exactly its lines
    write_bytes_atomic(target, b"".join(raw + b"\n" for raw in unit.lines_raw))


REFERENCE_DATA = ("catalogue", "shipments")


def land_reference_data(input_dir: str | os.PathLike, landing: str | os.PathLike) -> list[str]:
    """Place the input's catalogue/ and shipments/ (reference data, not replayed) in the
    landing directory before the stream starts, each folder whole at once (copied beside
    it, then renamed), unless the landing directory already has it. The folders placed."""
    placed = []
    for part in REFERENCE_DATA:
        source, target = Path(input_dir) / part, Path(landing) / part
        if source.is_dir() and not target.exists():
            partial = target.with_name(f".{part}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(source, partial)
            os.replace(partial, target)
            placed.append(part)
    return placed


def _prepared_landing(input_dir, landing_dir, names: list[str]) -> Path:
    landing = Path(landing_dir).expanduser().resolve()
    if landing == Path(input_dir).expanduser().resolve():
        raise ReplayError(f"the landing directory {landing} is the input directory: choose another one")
    landing.mkdir(parents=True, exist_ok=True)
    taken = [name for name in names if (landing / name).exists()]
    if taken:
        raise ReplayError(
            f"landing directory {landing} already holds {taken[0]} (from an earlier replay?): "
            "land into an empty or new directory"
        )
    return landing


# ---------------------------------------------------------------------------------------
# Kafka: one message per raw line, scheduled in chunks
# ---------------------------------------------------------------------------------------


def replay_to_kafka(
    input_dir: str | os.PathLike,
    bootstrap: str,
    topic: str,
    rate_lines_per_second: float | None = None,
    *,
    partitions: int = 1,
    replication_factor: int = -1,
    chunk_lines: int | None = None,
    log_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    client_config: Mapping[str, object] | None = None,
    connect_timeout_s: float = 10.0,
    flush_timeout_s: float = 120.0,
    order: str = FILE_ORDER,
) -> ReplaySummary:
    """Produce every raw line of `input_dir`'s sales files to `topic`, in order (file order,
    or with order="event-time" sorted by `event_time_order`; a message's key and `file_seq`
    always name its own input file).

    The topic is created with `partitions` (default 1: one partition keeps the global line
    order; with more, the file-name key still keeps each file's lines in order) and
    `replication_factor` (-1 = the broker's default) when missing; an existing topic is kept
    as it is, with a note when its partition count differs. `chunk_lines` lines form one
    schedule unit (default: about 10 ms of the rate, at most 1000). `client_config` adds
    librdkafka settings (security, for example) to the admin client and the producer.
    Raises KafkaUnavailableError within about `connect_timeout_s` when the broker cannot be
    reached, and KafkaDeliveryError when a message is not acknowledged.
    """
    _validate_kafka_arguments(topic, partitions, chunk_lines)
    order = _validated_order(order)
    files = _sales_files(input_dir)
    rate = _validated_rate(rate_lines_per_second)
    chunk = chunk_lines or _default_chunk_lines(rate)
    config = {"bootstrap.servers": bootstrap, **(client_config or {})}

    try:
        check_broker(bootstrap, connect_timeout_s)
    except BrokerUnavailable as error:
        raise KafkaUnavailableError(str(error)) from None
    topic_fields = _ensure_topic(config, topic, partitions, replication_factor, connect_timeout_s)
    producer = _producer(config)
    deliveries = _DeliveryTracker()

    lines = _lines_in_order(files, order)  # event-time order: sorted here, before the clock starts
    run = _Run("kafka", input_dir, f"{bootstrap}/{topic}", rate, files, progress, order)
    try:
        for unit, (first_seq, chunk_of_lines) in enumerate(_chunks(lines, chunk, whole_files=order == FILE_ORDER)):
            intended = run.wait_for(first_seq)
            _produce_chunk(producer, topic, first_seq, chunk_of_lines, deliveries)
            run.record(unit, first_seq, len(chunk_of_lines), _source_names(chunk_of_lines), topic, intended)
            deliveries.raise_if_failed()
        _flush(producer, deliveries, run.total_lines, flush_timeout_s)
    except BaseException as error:
        run.abandon(log_dir, error, **topic_fields)
        raise
    return run.finish(log_dir, **topic_fields)


def _validate_kafka_arguments(topic: str, partitions: int, chunk_lines: int | None) -> None:
    if not isinstance(topic, str) or not KAFKA_TOPIC_RE.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(f"bad Kafka topic name {topic!r}: 1-249 characters of A-Z a-z 0-9 . _ -")
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a positive integer, got {partitions!r}")
    if chunk_lines is not None and (
        isinstance(chunk_lines, bool) or not isinstance(chunk_lines, int) or chunk_lines < 1
    ):
        raise ValueError(f"chunk_lines must be a positive integer or None, got {chunk_lines!r}")


def _default_chunk_lines(rate: float | None) -> int:
    if rate is None:
        return MAX_KAFKA_CHUNK_LINES
    return max(1, min(MAX_KAFKA_CHUNK_LINES, int(rate * KAFKA_CHUNK_SECONDS)))


def _chunks(lines: Iterable[_Line], chunk_lines: int, whole_files: bool) -> Iterator[tuple[int, list[_Line]]]:
    """(global seq of the first line, lines) in emission order, at most chunk_lines each.
    With whole_files (file order) a chunk never spans two files, so each log row names one
    source file. Lines are taken lazily, as they are emitted."""
    seq = 0
    chunk: list[_Line] = []
    for line in lines:
        if chunk and whole_files and line.sales.file_seq != chunk[-1].sales.file_seq:
            yield seq, chunk
            seq, chunk = seq + len(chunk), []
        chunk.append(line)
        if len(chunk) == chunk_lines:
            yield seq, chunk
            seq, chunk = seq + len(chunk), []
    if chunk:
        yield seq, chunk


def _ensure_topic(config: dict, topic: str, partitions: int, replication_factor: int, timeout_s: float) -> dict:
    """The topic's fields for the summary, creating it when missing."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(dict(config))
    existing = _topic_partitions(admin, topic, config["bootstrap.servers"], timeout_s)
    created = False
    if existing is None:
        future = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
            operation_timeout=timeout_s,
        )[topic]
        try:
            future.result(timeout=timeout_s + 5)
            created, existing = True, partitions
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another client raced us
                raise ReplayError(f"cannot create Kafka topic {topic!r}: {error.args[0].str()}") from None
            existing = _topic_partitions(admin, topic, config["bootstrap.servers"], timeout_s)
    notes = []
    if existing != partitions:
        notes.append(
            f"topic {topic!r} already exists with {existing} partitions (asked for {partitions}); "
            "kept as it is: line order holds within each file (the message key), not across files"
        )
    return {"topic": topic, "partitions": existing, "topic_created": created, "notes": notes}


def _topic_partitions(admin, topic: str, bootstrap: str, timeout_s: float) -> int | None:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as error:
        raise KafkaUnavailableError(
            str(unavailable(bootstrap, f"no metadata within {timeout_s:g} s: {error.args[0].str()}"))
        ) from None
    found = metadata.topics.get(topic)
    return None if found is None or found.error is not None else len(found.partitions)


def _producer(config: dict):
    from confluent_kafka import Producer

    # Idempotence (with acks=all) means retries neither duplicate nor reorder a line.
    return Producer(
        {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": KAFKA_LINGER_MS,
            "message.timeout.ms": KAFKA_DELIVERY_TIMEOUT_MS,
            **config,
        }
    )


class _DeliveryTracker:
    """The delivery callback: counts acknowledgements and keeps the first failure."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, error, message) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"line seq {_seq_header(message)}: {error.str()}"

    def raise_if_failed(self) -> None:
        if self.failed:
            raise KafkaDeliveryError(f"{self.failed} message(s) failed delivery; first: {self.first_error}")


def _seq_header(message) -> str:
    return next((value.decode() for key, value in (message.headers() or []) if key == "seq"), "?")


def _produce_chunk(producer, topic: str, first_seq: int, lines: list[_Line], deliveries: _DeliveryTracker) -> None:
    for seq, line in enumerate(lines, start=first_seq):
        key = line.sales.path.name.encode("utf-8")  # its own file, in either order
        headers = [("seq", str(seq).encode("ascii")), ("file_seq", str(line.sales.file_seq).encode("ascii"))]
        while True:
            try:
                producer.produce(topic, value=line.raw, key=key, headers=headers, on_delivery=deliveries)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: wait for acknowledgements (shows as lag)
                deliveries.raise_if_failed()
    producer.poll(0)  # serve delivery callbacks without waiting


def _flush(producer, deliveries: _DeliveryTracker, expected: int, timeout_s: float) -> None:
    undelivered = producer.flush(timeout_s)
    deliveries.raise_if_failed()
    if undelivered:
        raise KafkaDeliveryError(f"{undelivered} message(s) still unacknowledged after {timeout_s:g} s")
    if deliveries.delivered != expected:
        raise KafkaDeliveryError(f"{deliveries.delivered} messages acknowledged, expected {expected}")
