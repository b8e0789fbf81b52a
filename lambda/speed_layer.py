"""The speed layer: realtime views over the master dataset's appends after the cutoff.

It reads the master dataset as a Delta stream starting at cutoff + 1, so the batch
view (versions 0..cutoff) and the realtime view (cutoff+1..) never overlap and miss
nothing. Realtime views are complete-mode aggregates of the same additive partials,
except fulfilment's: its stream-stream join pairs are appended, and the serving layer
turns them into partials when it reads them.

Each speed-layer commit adds commit-log rows (`SpeedCommitLogger`, a progress listener).
"""
from __future__ import annotations

import json
import threading
import time

from lambda_arch.layout import LambdaConfig
from lambda_arch.master_dataset import max_seq_through
from lambda_arch.views import partial_view
from shared import queries as Q
from shared.commit_log import CommitLog
from shared.inputs import inspect_input, read_catalogue, shipments_schema

DELTA_END_INDEX = 2**63 - 1 - 100   # Delta's DeltaSourceOffset.END_INDEX: "all of this version"


def start_speed_layer(spark, config: LambdaConfig, cutoff: int, available_now: bool = True,
                      interval: str = "2 seconds") -> list:
    layout = inspect_input(config.input_dir, require_sales=False)
    skipped = layout.not_applicable()
    lines = spark.readStream.format("delta").option("startingVersion", cutoff + 1).load(config.master)
    catalogue = read_catalogue(spark, layout)
    shipments = None
    if layout.shipments_dir is not None:
        shipments = Q.parse_shipments(
            spark.readStream.option("header", True).schema(shipments_schema()).csv(layout.shipments_glob)
        )
    started = []
    for query in config.queries:
        if query in skipped:
            continue
        view = partial_view(query, lines, config.settings, catalogue, shipments)
        # The aggregates are small, so they are kept in complete mode (one simple serving
        # read). Fulfilment is the exception: a query with a stream-stream join runs only in
        # append mode, so the speed layer appends the join's pairs and the serving layer
        # aggregates them when it reads (serving_layer.serve).
        mode = "complete"
        if query == "fulfilment":
            view = Q.shipped_pairs(lines, shipments, config.settings)
            mode = "append"
        writer = (
            view.writeStream.queryName(f"lambda_speed_{query}")
            .format("delta").outputMode(mode)
            .option("checkpointLocation", config.checkpoint(f"speed_after_v{cutoff:06d}_{query}"))
        )
        writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=interval)
        started.append(writer.start(config.realtime_view(cutoff, query)))
    return started


def delta_versions_through(end_offset_json: str) -> int:
    """The last master version a Delta stream has wholly read, from its end offset.

    Delta's offset is (reservoirVersion, index): index END_INDEX means every file of that
    version was read; a negative index (the base or metadata markers) means none of it yet,
    and a file index means part of it: both count only the versions before (never claims
    lines it may not include).
    """
    offset = json.loads(end_offset_json)
    version = int(offset["reservoirVersion"])
    return version if int(offset["index"]) == DELTA_END_INDEX else version - 1


def rows_committed(query: str, progress) -> int:
    """The rows a speed-layer commit wrote: the sink's count when Spark reports one; the
    Delta sink reports -1, so for a complete-mode aggregate the rows of its final state
    (= the whole realtime view it rewrote); -1 (unknown) for fulfilment's appended pairs."""
    if progress.sink.numOutputRows >= 0:
        return progress.sink.numOutputRows
    if query != "fulfilment" and progress.stateOperators:
        return progress.stateOperators[-1].numRowsTotal
    return -1


def _master_offset(progress) -> str | None:
    """The end offset of the speed-layer query's master-dataset (Delta) source."""
    for source in progress.sources:
        if source.description.startswith("DeltaSource") and source.endOffset:
            return source.endOffset
    return None


class SpeedCommitLogger:
    """Commit-log rows for speed-layer commits, from Spark's progress events.

    A progress event is posted after its micro-batch has committed to the realtime view's
    Delta table, so "now" in the listener is after the commit is readable. The row's
    max_seq is what master versions <= the versions the batch has read include (the batch
    view covers versions <= cutoff, so serving includes the same); rows: see
    `rows_committed` (not the merged served result: that would cost a Spark job per
    commit inside the listener).
    """

    PREFIX = "lambda_speed_"

    def __init__(self, config: LambdaConfig):
        from pyspark.sql.streaming import StreamingQueryListener

        self.config = config
        self.commit_log = CommitLog(config.commit_log)
        self.logged_batches: dict[str, int] = {}   # query id -> last batch id logged
        self._lock = threading.Lock()
        logger = self

        class _Listener(StreamingQueryListener):
            def onQueryStarted(self, event):
                pass

            def onQueryProgress(self, event):
                logger.on_progress(event.progress)

            def onQueryIdle(self, event):
                pass

            def onQueryTerminated(self, event):
                pass

        self.listener = _Listener()

    def on_progress(self, progress) -> None:
        if not (progress.name or "").startswith(self.PREFIX):
            return   # another query
        visible_at = time.time()
        offset = _master_offset(progress)
        if progress.numInputRows > 0 and offset is not None:   # a batch that read nothing serves nothing new
            max_seq = max_seq_through(self.config, delta_versions_through(offset))
            query = progress.name[len(self.PREFIX):]
            self.commit_log.append(query, max_seq, rows_committed(query, progress), visible_at)
        with self._lock:
            self.logged_batches[str(progress.id)] = progress.batchId

    def caught_up(self, queries) -> bool:
        """Has every query's last progress reached the listener? (Events arrive asynchronously.)"""
        with self._lock:
            return all(_last_batch_id(q) is None or self.logged_batches.get(str(q.id), -1) >= _last_batch_id(q)
                       for q in queries)

    def attach(self, spark) -> "SpeedCommitLogger":
        spark.streams.addListener(self.listener)
        return self

    def detach(self, spark, queries, timeout_seconds: float = 30.0) -> None:
        """Wait (bounded) for the queries' last events, then remove the listener."""
        deadline = time.monotonic() + timeout_seconds
        while not self.caught_up(queries) and time.monotonic() < deadline:
            time.sleep(0.05)
        spark.streams.removeListener(self.listener)


def _last_batch_id(query) -> int | None:
    progress = query.lastProgress
    if progress is None:
        return None
    return progress["batchId"] if isinstance(progress, dict) else progress.batchId
