"""`lab run dstream`: the legacy StreamingContext application.

It watches a landing directory with textFileStream; the runner replays the input's
sales files into it (written elsewhere, then renamed: textFileStream needs files to
appear atomically) and stops as soon as every landed file has been read and its batch's
output is written; the last batch's snapshot of the running totals is the result.

How a drain is paced (textFileStream reads, at each batch interval, every file that
appeared since the previous tick): the files are landed in groups of about
`lines_per_batch` raw lines, one group just after each tick, so each batch reads one
group. The feed does not wait for processing: when processing is slower than the feed,
batches queue up and run back to back, and the batches that read no file (the ones after
the last group) run no Spark job at all. Each batch with files:
- collects its valid lines for the Great Expectations gate, which checks them on a driver
  thread of its own while Spark goes on;
- adds every query and the line accounting up per partition, in the same Python pass as
  the parse, into one running state
  (updateStateByKey keyed by (query, key)), and collects that state: the snapshot, and one
  commit per query (rows: the query's keys; max_seq: the highest seq read so far).
When every landed file has gone through those steps, the last snapshot is the result and
nothing is left to process: the context stops at once (the batches still queued read no
file), the quality gate finishes, and the results export is written.

Every run builds a new StreamingContext and replays the whole input into it. The context
checkpoints to WORKDIR/dstream/checkpoint because updateStateByKey and windowed
reductions need a checkpoint folder, but nothing recovers from it: there is no
`StreamingContext.getOrCreate`, so a run that is stopped or fails starts again from the
first file (with `fresh`, the default, after deleting the folder).
"""
from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote

from legacy_dstream import pipeline as P
from legacy_dstream.parsing import OrderLine
from shared.atomic import copy_file_atomic
from shared.commit_log import CommitLog, commit_log_path
from shared.export import QUERY_NAMES
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.quality import QualityExpectations, check_batch, expectations_from_input, validate_order_lines
from shared.raw_lines import count_raw_lines
from shared.sequence import SeqRange, file_name_of, seq_ranges
from shared.settings import WorkloadSettings

BUILD = "dstream"
# fulfilment needs a stream-stream join with state expiry: not written for the legacy build.
UNSUPPORTED = {"fulfilment": "not implemented in the legacy build (stream-stream join with state expiry)"}


@dataclass(frozen=True)
class DStreamConfig:
    input_dir: str
    workdir: str
    # Every tick costs CPU even without data (PySpark builds each DStream's RDD through the
    # Python driver and checkpoints the graph: 0.1-0.5 s here), so a drain uses few, big batches.
    batch_seconds: float = 2.0
    lines_per_batch: int = 100_000   # raw lines landed together (whole files), one group per batch
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
    def commit_log(self) -> Path:
        return commit_log_path(self.workdir, BUILD)


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
    name: str        # in the landing directory: `{index:06d}-{source name}`, so name order = input order
    lines: int       # raw lines (shared/raw_lines.py)


def landing_plan(sales_files: Sequence[Path]) -> list[LandingFile]:
    return [LandingFile(source, f"{index:06d}-{source.name}", count_raw_lines(source))
            for index, source in enumerate(sales_files)]


def file_groups(plan: Sequence[LandingFile], lines_per_batch: int) -> list[list[LandingFile]]:
    """Consecutive files of about `lines_per_batch` raw lines each (a file is never split;
    a group closes once it holds at least that many)."""
    groups, current, lines = [], [], 0
    for landing in plan:
        current.append(landing)
        lines += landing.lines
        if lines >= lines_per_batch:
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


def feed_groups(groups: Sequence[Sequence[LandingFile]], landing: Path, batch_seconds: float,
                stop: threading.Event, not_before_ns: int = 0) -> None:
    """Land the groups one by one, each just after the tick that picked up the one before,
    so each batch reads one group (a group landing late only moves to the next batch:
    textFileStream keeps unread files for a minute).

    The feed does not wait for processing: batches that read nothing would otherwise come
    between the groups, and each of them adds a step (a cogroup) to the lineage of the
    running state, which the next batch with data has to compute. Queued batches hold no
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
            target = copy_file_atomic(item.source, landing / item.name)
            if os.stat(target).st_mtime_ns < not_before_ns:
                later = not_before_ns + 1_000_000_000
                os.utime(target, ns=(later, later))
        landed_at = time.time()


# ---------------------------------------------------------------------------------------
# Driver side: the quality gate and the drain's state
# ---------------------------------------------------------------------------------------

_WARM_UP_LINE = OrderLine("0", "warm-up", 1, Decimal("1.00"), Decimal("1.00"), dt.datetime(2019, 1, 1),
                          "1 A St", "Dallas", "TX", "75001")


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

    def submit(self, name: str, records: list[tuple]) -> None:
        if not records:
            return
        while len(self._futures) >= self.pending:
            self._futures.popleft().result()
        self._futures.append(self._pool.submit(self._check, name, records))

    def _check(self, name: str, records: list[tuple]) -> None:
        import pandas as pd

        check_batch(pd.DataFrame.from_records(records, columns=OrderLine._fields), self.expectations,
                    self.directory, name)

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
      and hand them to the quality gate, which checks them while Spark goes on;
    - `totals`: for a batch that read files, collect the running state of every query (one
      job: parse and per-partition totals in one pass, the state update), keep it as the
      snapshot and commit it: one row per query, with max_seq = the highest seq of the
      files read so far and rows = the query's keys. Then its files are done; once every
      landed file is, `done` is set.

    A batch that read no file runs no job and commits nothing (its totals are the previous
    ones). A failure sets `error` and `done`. The streaming checkpoint pickles these
    functions, from another thread, at every batch: only the configuration is pickled,
    never the live state.
    """

    def __init__(self, commit_log: CommitLog, ranges: dict[str, SeqRange], queries: Sequence[str],
                 gate: QualityGate | None = None):
        self.commit_log, self.ranges, self.queries, self.gate = commit_log, dict(ranges), tuple(queries), gate
        self._live()

    def _live(self) -> None:
        self.batch_files: dict = {}
        self.files_done: set[str] = set()
        self.snapshot: dict[str, list] = {}
        self.lines_seen = 0
        self.max_seq: int | None = None
        self.data_batches = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def __getstate__(self) -> dict:
        return {"commit_log": self.commit_log, "ranges": self.ranges, "queries": self.queries, "gate": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._live()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.done.set()

    def _range(self, name: str) -> SeqRange:
        found = self.ranges.get(name) or self.ranges.get(unquote(name))
        if found is None:
            raise KeyError(f"{name!r} is not a landed sales file")
        return found

    def quality(self, time_, rdd) -> None:
        if self.error is not None:
            return
        try:
            names = [file_name_of(path) for path in batch_file_names(rdd)]
            if not names:
                return
            self.batch_files[time_] = names
            if self.gate is not None:
                self.gate.submit(f"batch-{time_:%Y%m%dT%H%M%S%f}", rdd.collect())
        except BaseException as error:
            self._fail(error)

    def totals(self, time_, rdd) -> None:
        names = self.batch_files.pop(time_, None)
        if not names or self.error is not None:
            return   # a batch that read nothing changes no total: no job, no commit
        try:
            snapshot: dict[str, list] = {}
            for (query, key), value in rdd.collect():
                snapshot.setdefault(query, []).append((key, value))
            last = max(self._range(name).last_seq for name in names)
            self.max_seq = last if self.max_seq is None else max(self.max_seq, last)
            if self.queries:
                self.commit_log.append_many(self.queries, self.max_seq,
                                            {query: len(snapshot.get(query, ())) for query in self.queries})
            self.snapshot = snapshot
            self.lines_seen = sum(value[0] for _, value in snapshot.get(P.LINE_ACCOUNTING, ()))
            self.data_batches += 1
            self.files_done.update(names)
            if self.files_done >= set(self.ranges):
                self.done.set()
        except BaseException as error:
            self._fail(error)


def build_context(spark, config: DStreamConfig, drain: _Drain, catalogue: dict | None):
    from pyspark.streaming import StreamingContext

    # No receivers here, yet with a checkpoint folder the context opens the driver's
    # write-ahead log of received blocks; its batching writer warns "Writer queue
    # interrupted" at every stop. Unbatched, it closes quietly (read when the context starts).
    spark.sparkContext._jsc.sc().conf().set("spark.streaming.driver.writeAheadLog.allowBatching", "false")
    ssc = StreamingContext(spark.sparkContext, config.batch_seconds)
    ssc.checkpoint(config.checkpoint)
    raw = ssc.textFileStream(str(config.landing))
    # Not cached: each job parses in the same Python pass that uses the lines (the quality
    # rows, the per-partition totals). A cached parse would cost a pickle of every parsed
    # line into the cache and an unpickle for each job: more than parsing twice.
    parsed = P.parse(raw)
    P.order_lines(parsed).map(tuple).foreachRDD(drain.quality)
    P.all_totals(parsed, drain.queries, config.settings, catalogue).foreachRDD(drain.totals)
    return ssc


def run(spark, config: DStreamConfig, fresh: bool = True, progress=None) -> dict[str, str]:
    layout = inspect_input(config.input_dir)
    if fresh and config.root.exists():
        shutil.rmtree(config.root)
    commit_log = CommitLog(config.commit_log)
    if fresh:
        commit_log.clear()   # the commit log describes this run only
    shutil.rmtree(config.landing, ignore_errors=True)   # the whole input is landed again below
    config.landing.mkdir(parents=True, exist_ok=True)
    catalogue = read_catalogue_dict(layout.catalogue)
    plan = landing_plan(layout.sales_files)
    expected = sum(landing.lines for landing in plan)
    gate = QualityGate(expectations_from_input(config.input_dir), config.quality_dir)
    gate.warm_up()
    queries = [q for q in config.queries if q in _streamed(config, catalogue)]
    drain = _Drain(commit_log, landing_ranges(plan), queries, gate)
    ssc = build_context(spark, config, drain, catalogue)
    not_before_ns = time.time_ns()   # textFileStream ignores files older than itself
    stop_feeding, feed_error = threading.Event(), []

    def feed() -> None:
        try:
            feed_groups(file_groups(plan, config.lines_per_batch), config.landing, config.batch_seconds,
                        stop_feeding, not_before_ns)
        except BaseException as error:
            feed_error.append(error)
            drain.done.set()

    feeder = threading.Thread(target=feed, name="dstream-feed", daemon=True)
    ssc.start()
    try:
        feeder.start()
        deadline = time.monotonic() + config.timeout_seconds
        while not drain.done.wait(0.25):
            if progress:
                progress(drain.lines_seen, expected)
            if ssc.awaitTerminationOrTimeout(0.001):   # raises what failed a batch outside the drain's own steps
                raise RuntimeError("the streaming context stopped before the input was processed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"dstream saw {drain.lines_seen} of {expected} lines before the timeout")
        if feed_error:
            raise feed_error[0]
        if drain.error is not None:
            raise drain.error
        if progress:
            progress(drain.lines_seen, expected)
    except BaseException as failure:
        _stop(ssc, drain, feeder, stop_feeding, gate, failure)
        raise
    _stop(ssc, drain, feeder, stop_feeding, gate, None)
    return _write(config, layout, drain.snapshot, expected)


def _stop(ssc, drain: _Drain, feeder: threading.Thread, stop_feeding: threading.Event, gate: QualityGate,
          failure: BaseException | None) -> None:
    """Stop feeding, then the context, then wait for the quality gate.

    After a drain every landed file has been processed and its output written, so the
    batches still queued read no file and run no Spark job: the context stops at once
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
    try:
        ssc.stop(stopSparkContext=False, stopGraceFully=failure is not None)
    finally:
        try:
            gate.finish()
        except Exception:
            if failure is None:
                raise


def _streamed(config: DStreamConfig, catalogue) -> set[str]:
    names = (set(config.queries) - set(UNSUPPORTED)) & set(P.PAIRED_QUERIES)
    if catalogue is None:
        names.discard("category_revenue")
    return names


def _write(config: DStreamConfig, layout, snapshot: dict, expected: int) -> dict[str, str]:
    outcomes = {k: v[0] for k, v in snapshot.get(P.LINE_ACCOUNTING, [])}
    valid = outcomes.pop("valid", 0)
    # raw lines counted from the files themselves, so a lost line shows as unbalanced
    return write_results(config.workdir, BUILD, layout, config.queries, raw_lines=expected, valid_lines=valid,
                         quarantine=outcomes, quality_dir=config.quality_dir, unsupported=UNSUPPORTED,
                         result_rows=lambda query: [P.export_row(query, k, v) for k, v in snapshot.get(query, [])])
