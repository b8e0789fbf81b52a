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
  to the Delta table `WORKDIR/dstream/tables/results` (publish.py: the whole result, one
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

This module is the application: the quality gate, the drain's driver-side state, the
DStream graph and `run`. Its configuration is in config.py, the landing of the input in
landing.py, each batch's output and its publication to Delta in publish.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

from legacy_dstream import pipeline as P
from legacy_dstream.config import BUILD, UNSUPPORTED, DStreamConfig, follow_config, logic_of
from legacy_dstream.landing import Landing, shipment_files
from legacy_dstream.parsing import OrderLine
from legacy_dstream.publish import Snapshot, publish  # outputs pickled before the move name app.Snapshot
from shared import checkpoints
from shared.commit_log import CommitLog
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.progress_log import BatchSteps
from shared.quality import check_batch
from shared.quality_checks import validate_order_lines
from shared.quality_expectations import QualityExpectations, expectations_from_input
from shared.sequence import SeqRange, file_name_of


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
    again, in a new process; each call goes to the drain `run` registered there. It stays in
    this module, beside the drain: the checkpoint names it by its class path
    (legacy_dstream.app._Outputs), which a checkpoint written earlier must still find."""

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


def has_checkpoint(checkpoint: str) -> bool:
    """What StreamingContext.getOrCreate recovers from: a `checkpoint-<time>` file."""
    folder = Path(checkpoint)
    return folder.is_dir() and any(folder.glob("checkpoint-*"))


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
