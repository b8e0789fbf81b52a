"""Streaming query progress, kept on disk per query: what Spark reports per micro-batch
(input rows, rows dropped by the watermark, durations), so late lines are counted from
the engine's own accounting and survive restarts."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from shared.console import warn

if TYPE_CHECKING:
    from pyspark import SparkContext

_destinations: dict[str, Path] = {}  # query name -> its progress file
_lock = threading.Lock()
_recording: dict[int, SparkContext] = {}  # id -> each SparkContext whose session has the recorder
_unrecorded: set[str] = set()  # queries whose progress could not be written, said once


class ProgressRecorder:
    """A streaming query listener, implemented straight on the JVM's interface: each
    progress report is fetched as its JSON text (three Py4J calls). PySpark's own
    StreamingQueryListener first converts every report into Python objects field by field,
    hundreds of Py4J calls a report: in a Lambda follow run (four queries) that conversion
    was 14% of the driver's Python samples (py-spy), on a machine whose 2 cores also run the
    micro-batches."""

    def onQueryStarted(self, jevent):
        pass

    def onQueryProgress(self, jevent):
        progress = jevent.progress()
        path = _destinations.get(progress.name())
        if path is not None:
            write_report(path, progress.json())

    def onQueryIdle(self, jevent):
        pass

    def onQueryTerminated(self, jevent):
        pass

    class Java:
        implements = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]


def write_report(path: Path, report_json: str) -> None:
    """Append one progress report to `path`: Spark's JSON text as it is (compact, one line)."""
    with _lock:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(report_json.strip() + "\n")
        except OSError as error:
            # A full disk: the query's own next write fails too and stops the run with its
            # message; an exception here would only add Spark's stack trace to it.
            record = json.loads(report_json)
            name = record.get("name")
            if name not in _unrecorded:
                _unrecorded.add(name)
                warn(
                    f"the progress of {name} (batch {record.get('batchId')}) could not be kept in {path} "
                    f"({error.strerror}): counts read from it, such as the lines the watermark dropped, "
                    "can be short for this run"
                )


def record_progress(spark, query_name: str, path: Path) -> None:
    """Append every progress report of `query_name` to `path` (JSON lines)."""
    from py4j.java_gateway import java_import
    from pyspark.java_gateway import ensure_callback_server_started

    _destinations[query_name] = Path(path)
    context = spark.sparkContext
    if id(context) not in _recording:
        # what StreamingQueryManager.addListener does, with the recorder above in place of
        # PySpark's converting wrapper
        gateway = context._gateway
        java_import(gateway.jvm, "org.apache.spark.sql.streaming.*")
        ensure_callback_server_started(gateway)
        spark.streams._jsqm.addListener(gateway.jvm.PythonStreamingQueryListenerWrapper(ProgressRecorder()))
        _recording[id(context)] = context


def _deliver_pending(timeout_ms: int = 60_000) -> None:
    """Wait until every progress report posted so far in this process is in its file:
    Spark's listener bus delivers them on its own thread, so a query that has just ended
    can still have its last report queued (a drain counting its input rows read one batch
    short, and so could the watermark's dropped rows read after a follow run's stop)."""
    for context in _recording.values():
        if context._jsc is not None:  # not stopped
            context._jsc.sc().listenerBus().waitUntilEmpty(timeout_ms)


def read_progress(path: Path) -> list[dict]:
    """The last record of each batch in a JSON-lines file of progress reports or batch
    steps (a batch re-run after a crash reports again), in the order they first came. A
    batch is its query id and batch id: a file can hold several queries' batches (each of
    Lambda's cutoffs has a speed layer of its own, numbering its batches from 0). Reports
    this process's sessions have posted are delivered first."""
    _deliver_pending()
    if not Path(path).exists():
        return []
    by_batch: dict[tuple[str | None, int], dict] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            by_batch[(record.get("id"), record["batchId"])] = record
    return list(by_batch.values())


def rows_dropped_by_watermark(path: Path) -> int:
    return sum(
        op.get("numRowsDroppedByWatermark", 0)
        for record in read_progress(path)
        for op in record.get("stateOperators", [])
    )


def input_rows(path: Path) -> int:
    return sum(record.get("numInputRows", 0) for record in read_progress(path))


STEPS_SUFFIX = ".steps"  # a query's steps beside its progress reports: <query>.steps.jsonl


class BatchSteps:
    """Where a foreachBatch function spends a micro-batch (Spark's progress reports only
    `addBatch` as a whole): wall milliseconds per named step, one JSON line per batch
    (`{"batchId": 3, "startedAt": <epoch s>, "stepsMs": {"quality_gate": 812, ...}}`)
    appended to `path`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextmanager
    def batch(self, batch_id: int, started_at: float | None = None, timed: dict[str, float] | None = None):
        """Time the steps of one batch; `started_at` (epoch s) and `timed` (ms per step) for a
        batch whose first steps ran before this call (DStream's output operations)."""
        times: dict[str, float] = defaultdict(float, timed or {})
        started_at = time.time() if started_at is None else started_at

        @contextmanager
        def step(name: str):
            started = time.perf_counter()
            try:
                yield
            finally:
                times[name] += (time.perf_counter() - started) * 1000

        yield step
        record = {
            "batchId": batch_id,
            "startedAt": round(started_at, 3),
            "stepsMs": {name: round(ms) for name, ms in times.items()},
        }
        with _lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
