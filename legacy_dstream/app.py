"""`lab run dstream`: the legacy StreamingContext application.

It watches a landing directory (WORKDIR/dstream/landing) with textFileStream; the run
lands the input's sales files there (written elsewhere, then renamed: textFileStream
needs files to appear atomically). A drain stops as soon as every landed file has been
read and its batch's output is written; `follow` keeps landing what arrives in the input
directory until asked to stop, then finishes the files already landed.

How a drain is paced (textFileStream reads, at each batch interval, every file that
appeared since the previous tick): the files are landed in groups of about
`batch_mb` of input (LAB_DRAIN_BATCH_MB), one group just after each tick, so each batch reads one
group. The feed does not wait for processing: when processing is slower than the feed,
batches queue up and run back to back, and the batches that read no file (the ones after
the last group) run no Spark job at all. Each batch with files:
- collects its valid lines for the Great Expectations gate, which checks them on a driver
  thread of its own while Spark goes on;
- adds every query and the line accounting up per partition, in the same Python pass as
  the parse, into one running state (updateStateByKey keyed by (query, key)), collects
  that state and writes it as the batch's output, keyed by its batch time; publishes it
  to the Delta table `WORKDIR/dstream/tables/results` (`publish`: the whole result, one
  row per query and key stamped with the batch time, appended once per batch time; a
  reader takes the newest batch), what a DStream application that serves readers does,
  so a result is "visible" here as it is in the other builds: readable from a Delta
  table; then one commit per query (rows: the query's keys; max_seq: the highest seq read
  so far).
The last output is the result: the results export is written from it.

Recovery (`StreamingContext.getOrCreate` over WORKDIR/dstream/checkpoint): a run started
again after a crash resumes the context its checkpoint holds (the DStream graph with its
pickled functions, the files each pending batch selected, the running state) instead of
starting over; batches that were in flight run again, and as each batch's output is keyed
by its batch time, a batch run twice overwrites its output: the results count every line
once (the SIGKILL test holds that). The logic fingerprint beside the checkpoint refuses
to resume a checkpoint written by other query logic, before Spark starts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import pickle
import shutil
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

from legacy_dstream import pipeline as P
from legacy_dstream.parsing import OrderLine
from shared import checkpoints
from shared.atomic import copy_file_atomic, write_bytes_atomic
from shared.catalogue import QUERY_NAMES
from shared.commit_log import CommitLog, commit_log_path
from shared.console import warn
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.progress_log import STEPS_SUFFIX, BatchSteps
from shared.quality import QualityExpectations, check_batch, expectations_from_input, validate_order_lines
from shared.sequence import LANDING_ADVICE, SeqRange, SequenceOrderError, counted, file_name_of, file_state, seq_ranges
from shared.settings import DEFAULT_DRAIN_BATCH_MB, WorkloadSettings

BUILD = "dstream"
# Following: each batch visits the whole running state (updateStateByKey, every key, in
# Python), 1.5-2 s here even for one small file or none, so 2 s batches keep the driver
# saturated and a backlog (the first batch's start-up) never drains; 4 s leaves room.
# Landing is not tied to it: arrivals are landed within `SCAN_SECONDS`.
FOLLOW_BATCH_SECONDS = 4.0
SCAN_SECONDS = 0.5  # following: how often the input is scanned for new files
UNSUPPORTED: dict[str, str] = {}  # every query has a DStream form (see pipeline.py for what each gives up)


@dataclass(frozen=True)
class DStreamConfig:
    input_dir: str
    workdir: str
    # Every tick costs CPU even without data (PySpark builds each DStream's RDD through the
    # Python driver and checkpoints the graph: 0.1-0.5 s here), so a drain uses few, big batches.
    batch_seconds: float = 2.0
    follow_batch_seconds: float = FOLLOW_BATCH_SECONDS
    # Whole files landed together, one group per batch, about `batch_mb` of input (as the
    # other builds' drains: few batches, because every batch visits the whole running
    # state, fulfilment's join above all); `lines_per_batch` instead when given.
    batch_mb: int = DEFAULT_DRAIN_BATCH_MB
    lines_per_batch: int | None = None
    files_per_batch: int | None = None  # instead: this many files per group (tests: kills between batches)
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    timeout_seconds: float = 1800.0

    @property
    def root(self) -> Path:
        return Path(self.workdir) / BUILD

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def checkpoint(self) -> str:
        return str(self.root / "checkpoint")

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"

    @property
    def shipments_landing(self) -> Path:
        return self.root / "landing_shipments"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"  # each batch's output (Snapshot), keyed by batch time

    @property
    def steps_file(self) -> Path:
        return (
            self.root / "progress" / f"batches{STEPS_SUFFIX}.jsonl"
        )  # each batch's steps (shared/progress_log.BatchSteps)

    @property
    def results_table(self) -> str:
        return str(self.root / "tables" / "results")  # what readers query (`publish`)

    @property
    def commit_log(self) -> Path:
        return commit_log_path(self.workdir, BUILD)

    @property
    def ready_file(self) -> Path:
        return self.root / "first_batch_done"  # written when this run's first batch has run


def read_catalogue_dict(path: Path | None) -> dict | None:
    if path is None:
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["product"].strip(): (r["category"].strip(), Decimal(r["unit_cost"])) for r in csv.DictReader(handle)}


def batch_file_names(rdd) -> list[str]:
    """The files a textFileStream batch read: its lineage holds one NewHadoopRDD per file,
    named with the file's path (Spark's FileInputDStream; DStreams give no other way)."""
    names, seen, pending = [], set(), [rdd._jrdd.rdd()]
    while pending:
        node = pending.pop()
        if node.id() in seen:
            continue
        seen.add(node.id())
        if node.getClass().getSimpleName() == "NewHadoopRDD" and node.name():
            names.append(node.name())
        dependencies = node.dependencies().iterator()
        while dependencies.hasNext():
            pending.append(dependencies.next().rdd())
    return names


# ---------------------------------------------------------------------------------------
# The landing plan: which file lands under which name, in which group
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandingFile:
    source: Path
    name: str  # in the landing directory: `{index:06d}-{source name}`, so name order = input order
    lines: int  # raw lines (shared/raw_lines.py)
    counted_as: tuple[int, int] | None = None  # the source's (size, mtime) when counted; None: it was gone


def landing_plan(sales_files: Sequence[Path], first_index: int = 0) -> list[LandingFile]:
    """The files' landing names, numbered on from `first_index`, with their raw lines (a
    file gone since it was listed keeps its place, with no lines: see `land`)."""
    return [
        _planned(source, f"{index:06d}-{source.name}") for index, source in enumerate(sales_files, start=first_index)
    ]


def _planned(source: Path, name: str) -> LandingFile:
    return LandingFile(source, name, *counted(source))


def land(item: LandingFile, target: Path) -> Path:
    """Copy one planned file into the landing directory. An input file fed by hand may have
    changed since it was counted (a copy in place that was not finished) or be gone: the
    run goes on (a gone file lands empty, so the drain that waits for it ends) and says so."""
    now = file_state(item.source)
    if now is not None and now == item.counted_as:
        try:
            return copy_file_atomic(item.source, target)
        except FileNotFoundError:
            now = None
    if now is None or item.counted_as is None:
        warn(f"{item.source} disappeared before it was landed: none of its lines is read")
        return write_bytes_atomic(target, b"")
    warn(f"{item.source} changed after it was counted: it is landed as it is now; {LANDING_ADVICE}")
    return copy_file_atomic(item.source, target)


def file_groups(
    plan: Sequence[LandingFile], lines_per_batch: int, files_per_batch: int | None = None
) -> list[list[LandingFile]]:
    """Consecutive files of about `lines_per_batch` raw lines each (a file is never split;
    a group closes once it holds at least that many), or of `files_per_batch` files."""
    groups, current, lines = [], [], 0
    for landing in plan:
        current.append(landing)
        lines += landing.lines
        if len(current) == files_per_batch if files_per_batch else lines >= lines_per_batch:
            groups.append(current)
            current, lines = [], 0
    if current:
        groups.append(current)
    return groups


def landing_ranges(plan: Sequence[LandingFile]) -> dict[str, SeqRange]:
    """Each landing name's global line range: shared/sequence.py's numbering of the landing
    directory (name order), from the line counts the plan already has."""
    return seq_ranges((landing.name, landing.lines) for landing in plan)


def seconds_to_next_tick(batch_seconds: float, now: float | None = None) -> float:
    """Time until the next batch of a StreamingContext with this interval: its timer ticks
    at whole multiples of the interval since the epoch (Spark's RecurringTimer)."""
    period_ms = int(round(batch_seconds * 1000))
    now_ms = (time.time() if now is None else now) * 1000
    return ((int(now_ms // period_ms) + 1) * period_ms - now_ms) / 1000


def feed_groups(
    groups: Sequence[Sequence[LandingFile]],
    landing: Path,
    batch_seconds: float,
    stop: threading.Event,
    not_before_ns: int = 0,
) -> None:
    """Land the groups one by one, each just after the tick that picked up the one before,
    so each batch reads one group (a group landing late only moves to the next batch:
    textFileStream keeps unread files for a minute).

    The feed does not wait for processing: batches that read nothing would otherwise come
    between the groups, and each of them costs a job over the whole running state
    (`_Drain.materialize`). Queued batches hold no
    data until they run, so running ahead costs nothing; the ones that read nothing come
    after the last group, and the stop drops them.

    `not_before_ns`: textFileStream ignores files older than the stream itself; a file system
    with coarse modification times could date a new file before it, so such a file is
    re-dated (it is read once its time has passed, at the latest one tick later)."""
    landing.mkdir(parents=True, exist_ok=True)
    margin = min(0.05, batch_seconds / 10)
    landed_at = None
    for group in groups:
        if landed_at is not None:
            tick = landed_at + seconds_to_next_tick(batch_seconds, landed_at)
            if stop.wait(max(0.0, tick + margin - time.time())):
                return
        elif stop.is_set():
            return
        for item in group:
            target = land(item, landing / item.name)
            if os.stat(target).st_mtime_ns < not_before_ns:
                later = not_before_ns + 1_000_000_000
                os.utime(target, ns=(later, later))
        landed_at = time.time()


class Landing:
    """The landing directory textFileStream watches, and the plan of what lands there: the
    input's sales files in name order, each landed whole as `{index:06d}-{name}` (its seq
    range numbered as shared/sequence.py numbers the input). A restart plans the same
    names, so what an earlier run landed is recognised and not landed again. With
    `follow`, the input is scanned again every batch interval and new files are planned
    after the others (the replayer names them in emission order)."""

    def __init__(self, folder: Path, input_dir: Path, list_files: Callable[[Path], Sequence[Path]] | None = None):
        self.folder, self.input_dir = Path(folder), Path(input_dir)
        self.list_files = list_files or (lambda folder: inspect_input(folder, require_sales=False).sales_files)
        self.plan: list[LandingFile] = []
        self.ranges: dict[str, SeqRange] = {}  # grows in place: the drain reads it
        self._lock = threading.Lock()
        self._unchecked: list[LandingFile] = []  # landed since the last `check_landed`
        self.scan()

    def scan(self) -> list[LandingFile]:
        """Plan the input's sales files not planned yet; returns them."""
        with self._lock:
            known = {item.source.name for item in self.plan}
            new = [path for path in self.list_files(self.input_dir) if path.name not in known]
            if new and self.plan and new[0].name < self.plan[-1].source.name:
                raise SequenceOrderError(
                    f"{new[0].name} appeared in {self.input_dir} after "
                    f"{self.plan[-1].source.name}, which sorts after it: landed files are "
                    "numbered in name order, so a new file must sort last"
                )
            added = landing_plan(new, first_index=len(self.plan))
            self.plan += added
            self.ranges.update(landing_ranges(self.plan))  # in place: the drain reads this dict
            return added

    def planned(self) -> list[str]:
        return [item.name for item in self.plan]

    def landed(self) -> list[str]:
        return [item.name for item in self.plan if (self.folder / item.name).exists()]

    def lines(self, names=None) -> int:
        """Raw lines of the planned files (or of `names` among them)."""
        return sum(item.lines for item in self.plan if names is None or item.name in names)

    def lines_per_mb(self, batch_mb: int) -> int:
        """How many raw lines of this input make about `batch_mb` MiB."""
        size = sum(item.source.stat().st_size for item in self.plan)
        return max(1, int(batch_mb * 2**20 * self.lines() / size)) if size else 1

    def _unlanded(self, items: Sequence[LandingFile]) -> list[LandingFile]:
        return [item for item in items if not (self.folder / item.name).exists()]

    def feed(self, config: DStreamConfig, stop: threading.Event, not_before_ns: int) -> None:
        """Land what is not landed yet, in groups of the configured size, one per batch."""
        groups = file_groups(
            self._unlanded(self.plan),
            config.lines_per_batch or self.lines_per_mb(config.batch_mb),
            config.files_per_batch,
        )
        feed_groups(groups, self.folder, config.batch_seconds, stop, not_before_ns)

    def land_all(self, batch_seconds: float, stop: threading.Event, not_before_ns: int) -> None:
        """Land what is planned and not landed yet, at once."""
        unlanded = self._unlanded(self.plan)
        if unlanded:
            feed_groups([unlanded], self.folder, batch_seconds, stop, not_before_ns)
            self._unchecked += unlanded

    def check_landed(self) -> list[str]:
        """The input files landed since the previous call whose size differs now from their
        landed copy: a file copied into the input in place, not finished when it was landed.
        The lines it gained are read by no batch: each is reported once. (A file gone since
        was read whole; one rewritten to the same size is not seen.)"""
        checked, self._unchecked = self._unchecked, []
        changed = []
        for item in checked:
            now, copy = file_state(item.source), file_state(self.folder / item.name)
            if now is not None and copy is not None and now[0] != copy[0]:
                changed.append(item.source.name)
                warn(
                    f"{item.source} changed after it was landed ({copy[0]:,} -> {now[0]:,} bytes): lines it "
                    f"gained since are not processed; {LANDING_ADVICE}"
                )
        return changed

    def follow(
        self, batch_seconds: float, stop: threading.Event, not_before_ns: int, others: Sequence[Landing] = ()
    ) -> None:
        """Land what is not landed yet, then every `SCAN_SECONDS` what arrived (here and in
        `others`), until `stop`: the next batch reads it."""
        while True:
            for landing in (self, *others):
                landing.land_all(batch_seconds, stop, not_before_ns)
            if stop.wait(min(SCAN_SECONDS, batch_seconds)):
                return
            for landing in (self, *others):
                landing.check_landed()  # one scan after landing: a copy in place is finished by then
                landing.scan()


# ---------------------------------------------------------------------------------------
# Driver side: the quality gate and the drain's state
# ---------------------------------------------------------------------------------------

_WARM_UP_LINE = OrderLine(
    "0", "warm-up", 1, Decimal("1.00"), Decimal("1.00"), dt.datetime(2019, 1, 1), "1 A St", "Dallas", "TX", "75001"
)


class QualityGate:
    """Great Expectations on each batch's valid lines, on one driver thread of its own (in
    batch order), so it runs while Spark goes on with the next batch. At most `pending`
    batches wait for it (their lines are held in driver memory); `submit` blocks beyond."""

    def __init__(self, expectations: QualityExpectations, directory: Path, pending: int = 2):
        self.expectations, self.directory, self.pending = expectations, Path(directory), pending
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dstream-quality")
        self._futures: deque[Future] = deque()

    def warm_up(self) -> None:
        """Import Great Expectations and build its suite now (seconds), not in the first batch;
        the one made-up line's report is thrown away."""
        import pandas as pd

        frame = pd.DataFrame.from_records([_WARM_UP_LINE], columns=OrderLine._fields)
        self._futures.append(self._pool.submit(validate_order_lines, frame, self.expectations))

    def submit(self, name: str, records: list[tuple]) -> Future | None:
        if not records:
            return None
        while len(self._futures) >= self.pending:
            self._futures.popleft().result()
        future = self._pool.submit(self._check, name, records)
        self._futures.append(future)
        return future

    def _check(self, name: str, records: list[tuple]) -> None:
        import pandas as pd

        check_batch(
            pd.DataFrame.from_records(records, columns=OrderLine._fields), self.expectations, self.directory, name
        )

    def finish(self) -> None:
        """Wait for every submitted batch (raising the first error) and end the thread."""
        try:
            while self._futures:
                self._futures.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


class _Drain:
    """Driver-side state of one run, fed by two foreachRDD functions that run on the driver
    one after the other for each batch (output operations run in registration order):

    - `quality`: which landed files the batch read (from its lineage: no Spark job); for a
      batch that read some, collect its valid lines (one job: parse, keep the valid lines)
      and hand them to the quality gate, which checks them while Spark runs the totals;
    - `totals`: for a batch that read files, collect the running state of every query (one
      job: parse and per-partition totals in one pass, the state update) and write it as
      this batch's output, keyed by its batch time (`Snapshot`): a batch run again after a
      crash overwrites its own output instead of adding to it. Then one commit per query
      (max_seq = the highest seq of the files read so far, rows = the query's keys). Once
      every landed file is in the snapshot, `done` is set.

    A batch that read no file commits nothing (its totals are the previous ones), yet runs
    one small job that computes its state (`materialize`). A failure sets `error` and
    `done` and fails the batch (see
    `_refuse_after_failure`). The streaming checkpoint never holds this
    object: it holds `_Outputs`, which finds the drain of the running process.
    """

    def __init__(
        self,
        commit_log: CommitLog,
        ranges: dict[str, SeqRange],
        queries: Sequence[str],
        gate: QualityGate | None = None,
        output_dir: Path | None = None,
        previous: Snapshot | None = None,
        ready_file: Path | None = None,
        results_table: str | None = None,
        steps_file: Path | None = None,
    ):
        self.commit_log, self.ranges, self.queries, self.gate = commit_log, ranges, tuple(queries), gate
        self.ready_file = ready_file
        self.output_dir, self.results_table = output_dir, results_table
        self.steps = BatchSteps(steps_file) if steps_file is not None else None
        self.last = previous or Snapshot(0, {}, {})
        self.batch_files: dict = {}
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._jobs = threading.Lock()  # held by an empty batch's job: `stop_jobs` waits for it
        self._stopping = False

    @property
    def snapshot(self) -> dict[str, list]:
        return self.last.totals

    @property
    def files_done(self) -> set[str]:
        return self.last.files

    @property
    def lines_seen(self) -> int:
        return sum(value[0] for _, value in self.snapshot.get(P.LINE_ACCOUNTING, ()))

    def covers(self, names) -> bool:
        return self.files_done >= set(names)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.done.set()

    def _range(self, name: str) -> SeqRange:
        found = self.ranges.get(name) or self.ranges.get(unquote(name))
        if found is None:
            raise KeyError(f"{name!r} is not a landed sales file")
        return found

    def _refuse_after_failure(self, time_) -> None:
        """A batch with files after a failure raises instead of skipping its work: a batch
        whose output operation fails is not marked complete in the checkpoint, so a run
        started again processes it (a skipped batch would count as done, its lines lost)."""
        raise RuntimeError(f"batch {time_} not processed: the run is stopping after an earlier failure")

    def quality(self, time_, rdd) -> None:
        try:
            names = [file_name_of(path) for path in batch_file_names(rdd)]
            if not names:
                return
            if self.error is not None:
                self._refuse_after_failure(time_)
            started = time.time()
            checked = self.gate.submit(f"batch-{time_:%Y%m%dT%H%M%S%f}", rdd.collect()) if self.gate else None
            self.batch_files[time_] = names, checked, started, {"valid_lines_job": (time.time() - started) * 1000}
        except BaseException as error:
            self._fail(error)
            raise

    def totals(self, time_, rdd) -> None:
        if self.error is not None:
            # even a batch whose files `quality` did not get to record: a batch with one
            # output operation failed and this one done would count as complete
            self._refuse_after_failure(time_)
        names, checked, started, timed = self.batch_files.pop(time_, (None, None, None, None))
        if not names:
            self.materialize(rdd)  # a batch that read nothing changes no total: no commit
            self._ran_a_batch()
            return
        try:
            batch_ms = int(round(time_.timestamp() * 1000))
            with self._timed(batch_ms, started, timed) as step:
                with step("state_job"):
                    totals: dict[str, list] = {}
                    for (query, key), value in rdd.collect():
                        totals.setdefault(query, []).append((key, value))
                # the files of the batches before this one, as the last output says, and this one's
                files = {t: n for t, n in self.last.batch_files.items() if t < batch_ms} | {batch_ms: sorted(names)}
                snapshot = Snapshot(batch_ms, files, totals)
                if checked is not None:
                    # the batch's quality report is on disk before its output: a batch that is not
                    # run again after a crash has both (the check ran beside the totals job)
                    with step("quality_gate_wait"):
                        checked.result()
                if self.output_dir is not None:
                    with step("state_file"):
                        snapshot.write(self.output_dir)
                if self.results_table is not None:
                    with step("delta_publish"):
                        publish(snapshot, self.results_table)
                self.last = snapshot
                max_seq = max((self._range(name).last_seq for name in snapshot.files), default=None)
                if self.queries and max_seq is not None:
                    with step("commit_log"):
                        self.commit_log.append_many(
                            self.queries, max_seq, {query: len(totals.get(query, ())) for query in self.queries}
                        )
            if self.covers(self.ranges if self.expected is None else self.expected) and not self.feeding:
                self.done.set()
            self._ran_a_batch()
        except BaseException as error:
            self._fail(error)
            raise  # the batch fails: it stays pending in the checkpoint, run again on restart

    @contextmanager
    def _timed(self, batch_ms: int, started: float | None, timed: dict[str, float] | None):
        """The batch's steps timed (`steps_file`), its first one (`quality`'s job) included."""
        if self.steps is None:
            yield lambda name: nullcontext()
            return
        with self.steps.batch(batch_ms, started, timed) as step:
            yield step

    def materialize(self, state) -> None:
        """Compute (and so cache) this batch's running state. updateStateByKey makes a new
        state RDD every batch, from the one before, without a shuffle (same partitioner); a
        state no job computed stays lazy, so the next batch with files would compute the
        whole chain in one task, a few nested Python workers per skipped batch: live, with
        2 s batches and files every few seconds, hundreds of workers and a run that stalled."""
        with self._jobs:
            if not (self._stopping or self.done.is_set()):  # done: the batches left are dropped
                state.count()

    def _ran_a_batch(self) -> None:
        """The harness starts replaying once the first batch has run (start-up is behind)."""
        if self.ready_file is not None and not self.ready_file.exists():
            self.ready_file.parent.mkdir(parents=True, exist_ok=True)
            self.ready_file.touch()

    def stop_jobs(self) -> None:
        """No more `materialize` jobs; returns once the running one (if any) has ended, so
        a stop does not kill its Python workers mid-task."""
        with self._jobs:
            self._stopping = True

    feeding = False  # follow mode: more files may come, so covering the landed ones is not the end
    expected: set[str] | None = None  # follow mode, stopping: the files landed before the stop (else every planned one)


_LIVE: dict[str, _Drain] = {}  # checkpoint folder -> the drain of this process


@dataclass(frozen=True)
class _Outputs:
    """The foreachRDD functions as the streaming checkpoint pickles them: only the
    checkpoint folder. A context that getOrCreate recovers from the checkpoint calls these
    again, in a new process; each call goes to the drain `run` registered there."""

    checkpoint: str

    def _drain(self) -> _Drain:
        try:
            return _LIVE[self.checkpoint]
        except KeyError:
            raise RuntimeError(f"no running dstream drain for {self.checkpoint}") from None

    def quality(self, time_, rdd) -> None:
        self._drain().quality(time_, rdd)

    def totals(self, time_, rdd) -> None:
        self._drain().totals(time_, rdd)


@dataclass(frozen=True)
class Snapshot:
    """One batch's output: the running totals after it, and the files each batch up to it
    read (batch time in ms -> landed names). Written atomically under its batch time."""

    batch_ms: int
    batch_files: dict[int, list[str]]
    totals: dict[str, list]

    @property
    def files(self) -> set[str]:
        return {name for names in self.batch_files.values() for name in names}

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / f"batch-{self.batch_ms:015d}.pickle", pickle.dumps(self))
        for older in sorted(folder.glob("batch-*.pickle"))[:-2]:  # the newest two are enough
            older.unlink(missing_ok=True)

    @staticmethod
    def latest(folder: Path) -> Snapshot | None:
        outputs = sorted(folder.glob("batch-*.pickle")) if folder.is_dir() else []
        return pickle.loads(outputs[-1].read_bytes()) if outputs else None


RESULTS_SCHEMA = "batch_ms bigint, query string, key string, row string"
PUBLISHER = "dstream"  # the writer mark's app id: batch times only grow within one checkpoint's table


def published_rows(snapshot: Snapshot) -> list[tuple[int, str, str, str]]:
    """The serving table's rows of a batch's output: per query and key, the batch time, the
    key and the result row as JSON (the export's columns; the line accounting as outcome
    and lines)."""
    rows = []
    for query, pairs in sorted(snapshot.totals.items()):
        for key, value in pairs:
            row = {"outcome": key, "lines": value[0]} if query == P.LINE_ACCOUNTING else P.export_row(query, key, value)
            rows.append((snapshot.batch_ms, query, json.dumps(key, default=str), json.dumps(row, default=str)))
    return rows


def publish(snapshot: Snapshot, table: str) -> None:
    """Append this batch's whole result to the Delta table, once per batch time (a batch run
    again after a crash finds its commit there and writes nothing). Appended rather than
    overwritten: an overwrite makes Delta reconstruct the table's files with Spark jobs at
    every batch; a reader takes the rows of the newest `batch_ms` (`served`)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()  # the running application's session
    frame = spark.createDataFrame(published_rows(snapshot), RESULTS_SCHEMA).coalesce(1)
    checkpoints.append_once(frame, table, PUBLISHER, snapshot.batch_ms)


def served(spark, table: str):
    """What a reader of the serving table sees: the newest batch's rows."""
    from pyspark.sql import functions as F

    results = spark.read.format("delta").load(table)
    return results.where(F.col("batch_ms") == results.agg(F.max("batch_ms")).first()[0])


def has_checkpoint(checkpoint: str) -> bool:
    """What StreamingContext.getOrCreate recovers from: a `checkpoint-<time>` file."""
    folder = Path(checkpoint)
    return folder.is_dir() and any(folder.glob("checkpoint-*"))


def shipment_files(folder: Path) -> list[Path]:
    """shipments/*.csv in name order, as the oracle reads them."""
    return sorted(path for path in folder.glob("*.csv") if path.is_file()) if folder.is_dir() else []


def build_context(spark, config: DStreamConfig, catalogue: dict | None, queries: Sequence[str]):
    """A new StreamingContext with the build's DStream graph (getOrCreate's setup function;
    a recovered context has this graph from its checkpoint instead)."""
    from pyspark.streaming import StreamingContext

    ssc = StreamingContext(spark.sparkContext, config.batch_seconds)  # type: ignore[arg-type]  # float seconds accepted
    ssc.checkpoint(config.checkpoint)
    raw = ssc.textFileStream(str(config.landing))
    # Not cached: each job parses in the same Python pass that uses the lines (the quality
    # rows, the per-partition totals). A cached parse would cost a pickle of every parsed
    # line into the cache and an unpickle for each job: more than parsing twice.
    parsed = P.parse(raw)
    outputs = _Outputs(config.checkpoint)
    P.order_lines(parsed).map(tuple).foreachRDD(outputs.quality)
    # The catalogue travels inside the functions, not as a broadcast variable: broadcasts
    # cannot be recovered from a streaming checkpoint (Spark's streaming guide).
    shipments = P.shipments(ssc.textFileStream(str(config.shipments_landing))) if "fulfilment" in queries else None
    P.all_totals(parsed, queries, config.settings, catalogue, shipments).foreachRDD(outputs.totals)
    return ssc


def _configure_streaming(spark) -> None:
    """Settings the StreamingContext reads when it starts or recovers."""
    # This build is the legacy DStream version on purpose: Spark's deprecation notice, said
    # at every context start, is known here and not news to the person running it.
    warnings.filterwarnings(
        "ignore", message="DStream is deprecated", category=FutureWarning, module="pyspark.streaming"
    )
    conf = spark.sparkContext._jsc.sc().conf()
    # No receivers here, yet with a checkpoint folder the context opens the driver's
    # write-ahead log of received blocks; its batching writer warns "Writer queue
    # interrupted" at every stop. Unbatched, it closes quietly.
    conf.set("spark.streaming.driver.writeAheadLog.allowBatching", "false")


def follow_config(config: DStreamConfig, recovering: bool, drain_logic: str) -> DStreamConfig:
    """A follow run's config: its own batch interval, except when it resumes the checkpoint
    of a drain (`drain_logic` recorded there), whose context keeps the interval it was
    written with."""
    if recovering and checkpoints.recorded_logic(config.checkpoint) == drain_logic:
        return config
    return replace(config, batch_seconds=config.follow_batch_seconds)


def logic_of(config: DStreamConfig, queries: Sequence[str], catalogue: dict | None) -> str:
    """The fingerprint of what the checkpoint's pickled functions compute: a recovered
    context runs the functions its checkpoint holds, so other logic must not resume it."""
    return checkpoints.fingerprint(
        (
            P.parse,
            P.order_lines,
            P.batch_totals,
            P.query_pairs,
            P._add_tuples,
            P.all_totals,
            P.shipments,
            P.fulfilment_pairs,
            P._join_step,
            tuple(queries),
            config.settings,
            config.batch_seconds,
            sorted((catalogue or {}).items()),
        )
    )


CHECKPOINT_REMEDY = "Run again with --fresh to start this build over from the first file."


def run(
    spark,
    config: DStreamConfig,
    fresh: bool = False,
    progress=None,
    follow: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, str]:
    """Process the input (to its end, or with `follow` until `should_stop()`), recovering the
    streaming context from WORKDIR/dstream/checkpoint when an earlier run left one."""
    from pyspark.streaming import StreamingContext

    layout = inspect_input(config.input_dir, require_sales=not follow)
    if fresh and config.root.exists():
        shutil.rmtree(config.root)
    commit_log = CommitLog(config.commit_log)
    if fresh:
        commit_log.clear()  # the commit log describes this run only
    catalogue = read_catalogue_dict(layout.catalogue)
    queries = [q for q in config.queries if q in _streamed(config, catalogue, layout)]
    recovering = has_checkpoint(config.checkpoint)
    if follow:
        config = follow_config(config, recovering, logic_of(config, queries, catalogue))
    checkpoints.check_logic(
        config.checkpoint, "dstream", logic_of(config, queries, catalogue), CHECKPOINT_REMEDY, used=recovering
    )
    if not recovering:  # nothing to resume: what an earlier start left is landed again
        for folder in (config.landing, config.shipments_landing, config.output_dir, Path(config.results_table)):
            shutil.rmtree(folder, ignore_errors=True)
    landing = Landing(config.landing, Path(config.input_dir))
    shipments = Landing(config.shipments_landing, Path(config.input_dir) / "shipments", shipment_files)
    config.ready_file.unlink(missing_ok=True)
    drain = _Drain(
        commit_log,
        landing.ranges,
        queries,
        output_dir=config.output_dir,
        previous=Snapshot.latest(config.output_dir),
        ready_file=config.ready_file,
        results_table=config.results_table,
        steps_file=config.steps_file,
    )
    drain.feeding = follow
    if not follow and drain.covers(landing.planned()):
        # a crash after the last batch's output: every line is in it already
        return _write(config, layout, drain.snapshot, landing.lines())
    gate = QualityGate(expectations_from_input(config.input_dir), config.quality_dir)
    gate.warm_up()
    drain.gate = gate
    _LIVE[config.checkpoint] = drain
    _configure_streaming(spark)
    ssc = StreamingContext.getOrCreate(config.checkpoint, lambda: build_context(spark, config, catalogue, queries))
    not_before_ns = time.time_ns()  # textFileStream ignores files older than itself
    stop_feeding, feed_error = threading.Event(), []

    def feed() -> None:
        try:
            others = [shipments] if P.FULFILMENT in queries else []
            if follow:  # the shipments as they arrive, like the sales
                landing.follow(config.batch_seconds, stop_feeding, not_before_ns, others=others)
            else:
                for other in others:  # at once: the join keeps shipments until their order lines come
                    other.land_all(config.batch_seconds, stop_feeding, not_before_ns)
                landing.feed(config, stop_feeding, not_before_ns)
        except BaseException as error:
            feed_error.append(error)
            drain.done.set()

    feeder = threading.Thread(target=feed, name="dstream-feed", daemon=True)
    ssc.start()
    try:
        feeder.start()
        deadline = None if follow else time.monotonic() + config.timeout_seconds
        while not drain.done.wait(0.25):
            if progress:
                progress(drain.lines_seen, landing.lines())
            # raises what failed a batch outside the drain's own steps (returns a bool, takes float seconds)
            if ssc.awaitTerminationOrTimeout(0.001):  # type: ignore[func-returns-value,arg-type]  # pyspark stub wrong
                raise RuntimeError("the streaming context stopped before the input was processed")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"dstream saw {drain.lines_seen} of {landing.lines()} lines before the timeout")
            if follow and should_stop() and not stop_feeding.is_set():
                # stop landing; the files landed so far are processed, then the run ends
                stop_feeding.set()
                feeder.join()
                drain.expected = set(landing.landed())
                drain.feeding = False
                if drain.covers(drain.expected):
                    drain.done.set()
        if feed_error:
            raise feed_error[0]
        if drain.error is not None:
            raise drain.error
        if progress:
            progress(drain.lines_seen, landing.lines())
    except BaseException as failure:
        _stop(ssc, drain, feeder, stop_feeding, gate, failure)
        _LIVE.pop(config.checkpoint, None)
        raise
    _stop(ssc, drain, feeder, stop_feeding, gate, None)
    _LIVE.pop(config.checkpoint, None)  # after the stop: a batch still running finds its drain
    return _write(config, layout, drain.snapshot, landing.lines(drain.expected))


def _stop(
    ssc,
    drain: _Drain,
    feeder: threading.Thread,
    stop_feeding: threading.Event,
    gate: QualityGate,
    failure: BaseException | None,
) -> None:
    """Stop feeding, then the context, then wait for the quality gate.

    After a drain every landed file has been processed and its output written, so the
    batches still queued read no file and run no Spark job (`stop_jobs`): the context stops at once
    (a graceful stop would wait for the next tick and run each queued batch; after a slow
    batch those add up, past spark.streaming.gracefulStopTimeout). After a failure the
    queued batches skip their work (`drain` has an error) and the stop is graceful, so a
    running job ends rather than having its Python workers killed mid-task. The gate's own
    errors are raised only when nothing failed before (the first error is the one to see)."""
    stop_feeding.set()
    if feeder.is_alive():
        feeder.join()
    if failure is not None:
        drain._fail(failure)
    drain.stop_jobs()
    try:
        ssc.stop(stopSparkContext=False, stopGraceFully=failure is not None)
    finally:
        try:
            gate.finish()
        except Exception:
            if failure is None:
                raise


def _streamed(config: DStreamConfig, catalogue, layout) -> set[str]:
    names = (set(config.queries) - set(UNSUPPORTED)) & {*P.PAIRED_QUERIES, P.FULFILMENT}
    if catalogue is None:
        names.discard("category_revenue")
    if layout.shipments_dir is None:
        names.discard(P.FULFILMENT)
    return names


def _write(config: DStreamConfig, layout, snapshot: dict, expected: int) -> dict[str, str]:
    outcomes = {k: v[0] for k, v in snapshot.get(P.LINE_ACCOUNTING, [])}
    valid = outcomes.pop("valid", 0)
    # raw lines counted from the files themselves, so a lost line shows as unbalanced
    return write_results(
        config.workdir,
        BUILD,
        layout,
        config.queries,
        raw_lines=expected,
        valid_lines=valid,
        quarantine=outcomes,
        quality_dir=config.quality_dir,
        unsupported=UNSUPPORTED,
        result_rows=lambda query: [P.export_row(query, k, v) for k, v in snapshot.get(query, [])],
    )
