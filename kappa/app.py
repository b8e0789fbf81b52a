"""The Kappa build: one Structured Streaming application over a replayable log.

The log is read and parsed once per micro-batch (why: each query reading and parsing the
log itself cost one parse per query per batch, and made Kappa several times slower than
a Spark batch job over the same lines):
- `log` (foreachBatch over the cached, classified micro-batch): one job counts the
  batch's lines per file and outcome with the quality gate's checks riding along
  (shared/quality_spark.OutcomeCounts); then every additive query's partial aggregate
  (line accounting, city, day, product, hour, category and city_revenue_v1) goes to one
  `partials` table in one commit, readers summing the partials per key; the valid lines
  go to the `clean_lines` table; the quarantine to its own. Appends are idempotent
  (shared/checkpoints.append_once: each commit marked with the checkpoint's query id and
  the batch id), so a batch replayed after a crash lands once. Every 50 batches the log
  compacts `partials` and the quarantine, and each stateful query its own table
  (shared/table_upkeep.py: a follow run's tables stay a few files, not one per batch).
- `window_revenue` (update mode through foreachBatch): event-time windows with Spark's
  watermark over the `clean_lines` stream; each batch appends the windows it changed,
  stamped with its batch id, and readers take each window's newest row. Late lines are
  dropped by Spark.
- `fulfilment_pairs` (append through foreachBatch): the stream-stream join of the clean
  lines with shipments, watermarks on both sides; fulfilment is aggregated when it is read.
The two stateful queries read `clean_lines` one commit per micro-batch, and each log
batch is one commit there, so their micro-batches are the log's and the watermark model
still explains every dropped line. A drain runs them beside the log, until they have read
its last commit.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial, reduce
from pathlib import Path

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from kappa.partials import (
    PARTIAL_KEYS,
    PARTIAL_VALUES,
    PARTIALS_SCHEMA,
    PARTIALS_TABLE,
    accounting_partial_row,
    as_partial_rows,
    read_accounting,
    totals,
)
from kappa.versions import BUILD, DEFAULT_VERSION, check_version, cut_over, serving_version
from shared import checkpoints, cleaning, table_upkeep
from shared import queries as Q
from shared.atomic import write_text_atomic
from shared.catalogue import ADDITIVE, QUERIES, QUERY_NAMES
from shared.commit_log import NO_SEQ, CommitLog
from shared.console import say
from shared.delta_log import latest_version, next_version
from shared.delta_versions import VersionSeqLog, versions_committed, versions_read
from shared.export import results_dir
from shared.finish import write_results
from shared.inputs import InputError, InputLayout, files_per_trigger, held_catalogue, inspect_input, shipments_schema
from shared.kafka import kafka_messages, watching_broker
from shared.progress_log import STEPS_SUFFIX, BatchSteps, input_rows, record_progress, rows_dropped_by_watermark
from shared.quality_expectations import expectations_from_input
from shared.quality_spark import VALID, OutcomeCounts
from shared.results import export_rows
from shared.sequence import LogBatchSeq
from shared.settings import DEFAULT_DRAIN_BATCH_MB, DEFAULT_KAFKA_BOOTSTRAP, WorkloadSettings
from shared.streaming import DELTA_READER_POLL, await_all, kept_batch

LATE_FILE = "_late.json"
LOG_QUERY = "log"
CLEAN_LINES = "clean_lines"  # the log's valid lines, parsed once; the stateful queries stream from it
REPLAY_REMEDY = (
    "To apply new logic, replay it into a new version: `lab kappa replay --version <new>`; "
    "to start over, remove the version's folder or pass --fresh."
)


@dataclass(frozen=True)
class KappaConfig:
    input_dir: str
    workdir: str
    version: str = DEFAULT_VERSION
    source: str = "files"  # "files" (landing directory) or "kafka"
    # Files per micro-batch (the watermark moves between micro-batches, so the model of
    # dropped lines replays the same grouping). None: sized by `batch_mb` (see `sized`).
    max_files_per_trigger: int | None = None
    batch_mb: int = DEFAULT_DRAIN_BATCH_MB
    processing_interval: str | None = None  # None: availableNow (drain and stop); else e.g. "5 seconds"
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP  # callers pass LabSettings.kafka_bootstrap
    kafka_topic: str = "sales"
    kafka_max_offsets_per_trigger: int | None = None
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)

    def __post_init__(self):
        check_version(self.version)
        if self.source not in ("files", "kafka"):
            raise ValueError(f"unknown source {self.source!r}: use files or kafka")
        unknown = set(self.queries) - set(QUERY_NAMES)
        if unknown:
            raise ValueError(f"unknown queries {sorted(unknown)}; the catalogue is {', '.join(QUERY_NAMES)}")

    @property
    def root(self) -> Path:
        return Path(self.workdir) / BUILD / self.version

    def table(self, name: str) -> str:
        return str(self.root / "tables" / name)

    def checkpoint(self, name: str) -> str:
        return str(self.root / "checkpoints" / name)

    def progress_file(self, name: str) -> Path:
        return self.root / "progress" / f"{name}.jsonl"

    def steps_file(self, name: str) -> Path:
        """Where a foreachBatch function's steps are timed (`BatchSteps`)."""
        return self.root / "progress" / f"{name}{STEPS_SUFFIX}.jsonl"

    def query_name(self, name: str) -> str:
        return f"{BUILD}_{self.version}_{name}"

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"


def sized(config: KappaConfig, layout: InputLayout) -> KappaConfig:
    """A drain's files per micro-batch when none was asked for: whole files up to about
    `batch_mb` (few micro-batches, so per-batch costs are paid rarely; recorded with the
    results, so the watermark model replays the same batches)."""
    if config.max_files_per_trigger or config.source != "files" or config.processing_interval:
        return config
    return replace(config, max_files_per_trigger=files_per_trigger(layout, config.batch_mb * 2**20))


def raw_stream(spark, config: KappaConfig, layout: InputLayout) -> DataFrame:
    """Raw lines (`value`) with where they came from (`source_file`)."""
    if config.source == "files":
        reader = spark.readStream.format("text")
        if config.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", config.max_files_per_trigger)
        else:  # following: whatever arrived since the last trigger, a backlog in slices
            reader = reader.option("maxBytesPerTrigger", config.batch_mb * 2**20)
        return reader.load(layout.sales_glob).select("value", F.col("_metadata.file_name").alias("source_file"))
    messages = kafka_messages(spark, config.kafka_bootstrap, config.kafka_topic, config.kafka_max_offsets_per_trigger)
    return messages.select(
        F.col("value").cast("string").alias("value"), F.col("key").cast("string").alias("source_file")
    )


def shipments_stream(spark, layout: InputLayout) -> DataFrame:
    raw = spark.readStream.option("header", True).schema(shipments_schema()).csv(str(layout.shipments_dir))
    return Q.parse_shipments(raw)


def latest_windows(updates: DataFrame) -> DataFrame:
    """window_revenue from its update log: each window as the last batch that changed it left it."""
    newest_first = Window.partitionBy("window_start", "window_end").orderBy(F.col("batch_id").desc())
    return (
        updates.withColumn("newest", F.row_number().over(newest_first))
        .where(F.col("newest") == 1)
        .drop("newest", "batch_id")
    )


def _additive_results(config: KappaConfig, layout: InputLayout, spark) -> dict[str, Callable[[DataFrame], DataFrame]]:
    """query -> its function over one micro-batch's valid lines (the applicable ones only)."""
    skipped = layout.not_applicable()
    wanted = [q for q in ADDITIVE if q in config.queries and q not in skipped]
    catalogue = held_catalogue(spark, layout) if any("catalogue" in QUERIES[q].needs for q in wanted) else None
    return {q: partial(Q.result, q, settings=config.settings, catalogue=catalogue) for q in wanted}


class _CommitLog:
    """This build's rows of WORKDIR/commits/kappa.csv: after a batch's writes have
    committed, one row per query whose result they changed, with the highest input seq
    the result now includes and the rows the commit wrote for that query. The log's seq
    comes from the files or Kafka offsets its batch read (as its checkpoint records them);
    a stateful query's from the `clean_lines` versions its batch read (`clean_seq`: the
    log records, after each append, which version holds input up to which seq)."""

    def __init__(self, config: KappaConfig, layout: InputLayout):
        self.config, self.root = config, layout.root
        self.log = CommitLog.for_build(config.workdir, BUILD)
        self.read = LogBatchSeq(
            config.checkpoint(LOG_QUERY),
            layout.root,
            (config.kafka_bootstrap, config.kafka_topic) if config.source == "kafka" else None,
        )
        self.clean_seq = VersionSeqLog(config.root / "clean_lines_seq.csv")
        self.highest: dict[str, int] = {}  # streaming query -> highest seq so far (results only grow)

    def _batch_max_seq(self, plan: str, batch_id: int, files=None) -> int | None:
        if plan == LOG_QUERY:
            return self.read.of_batch(batch_id, files)
        return self.clean_seq.max_seq_through(versions_read(self.config.checkpoint(plan), batch_id))

    def max_seq(self, plan: str, batch_id: int, files=None) -> int:
        """The highest seq the plan's results include once this batch commits."""
        seqs = [s for s in (self.highest.get(plan), self._batch_max_seq(plan, batch_id, files)) if s is not None]
        return max(seqs) if seqs else NO_SEQ

    def record(self, plan: str, batch_id: int, rows: dict[str, int], files=None) -> int:
        """Log the batch's commit (`files`: the sales files a log batch read, when known from
        its data); returns the highest seq the plan's results include."""
        self.highest[plan] = self.max_seq(plan, batch_id, files)
        self.log.append_many(list(rows), self.highest[plan], rows)
        return self.highest[plan]


def _fan_out(
    config: KappaConfig,
    results: dict[str, Callable],
    app_id: checkpoints.CheckpointAppId,
    commits: _CommitLog,
    keep_clean_lines: bool,
) -> Callable[[DataFrame, int], None]:
    """foreachBatch of the `log` query: one parse, every output of the batch."""
    expectations = expectations_from_input(config.input_dir)
    steps = BatchSteps(config.steps_file(LOG_QUERY))

    def write(classified: DataFrame, batch_id: int) -> None:
        with steps.batch(batch_id) as step:
            with step("read_parse_count_gate"):  # keeps the batch, before threads read it at once
                classified = kept_batch(classified)
                counts = OutcomeCounts(classified, expectations)
            if not counts.rows:
                return
            by_outcome = counts.by_outcome()
            # One partition: every aggregation below needs no shuffle (a single partition
            # already satisfies grouping), so the whole fan-out is one stage. Per-stage
            # costs dominated small live micro-batches; the cached rows are cheap to scan.
            single_lines = cleaning.valid_order_lines(classified.coalesce(1))
            with step("partials"):
                collected = [accounting_partial_row(outcome, lines) for outcome, lines in sorted(by_outcome.items())]
                frames = [as_partial_rows(query, result(single_lines)) for query, result in results.items()]
                if frames and by_outcome.get(VALID):
                    # a few hundred rows: counted per query on the driver, written from there (a union
                    # by position: every frame has the partials' columns in their order)
                    collected += [tuple(row) for row in reduce(DataFrame.union, frames).collect()]
            written = Counter(row[0] for row in collected)
            writes = [(classified.sparkSession.createDataFrame(collected, PARTIALS_SCHEMA).coalesce(1), PARTIALS_TABLE)]
            appends_clean = keep_clean_lines and bool(by_outcome.get(VALID))
            if appends_clean:
                writes.append((single_lines, CLEAN_LINES))
            if set(by_outcome) - {VALID}:  # no empty commit: most batches of clean input quarantine nothing
                writes.append((cleaning.quarantined_lines(classified, keep=("source_file",)).coalesce(1), "quarantine"))
            if appends_clean:
                # Which seq the clean_lines version about to be written holds, recorded before
                # it is visible: a stateful query may read it at once, and must find its seq.
                # (A replayed batch whose append is already in adds no version: its row then
                # names the next one, which includes these lines too.)
                commits.clean_seq.record(
                    batch_id,
                    next_version(config.table(CLEAN_LINES)),
                    commits.max_seq(LOG_QUERY, batch_id, counts.source_files()),
                )
            with step("delta_appends"), ThreadPoolExecutor(len(writes)) as pool:
                for future in [
                    pool.submit(checkpoints.append_once, frame, config.table(name), app_id(), batch_id)
                    for frame, name in writes
                ]:
                    future.result()
            with step("commit_log"):
                max_seq = commits.record(
                    LOG_QUERY, batch_id, {query: written[query] for query in results}, counts.source_files()
                )
                if keep_clean_lines and not appends_clean:  # no new version: the current one stands for it
                    commits.clean_seq.record(batch_id, latest_version(config.table(CLEAN_LINES)), max_seq)
            with step("quality_report"):  # after the results are visible: not on their latency
                counts.record_report(config.quality_dir, f"batch-{batch_id:06d}")
            if table_upkeep.due(batch_id):
                with step("compaction"):  # the log's own tables, between two of its commits
                    for name in (PARTIALS_TABLE, "quarantine"):
                        table_upkeep.compact(classified.sparkSession, config.table(name))

    return write


def _append_emitted(
    plan: str,
    query: str,
    table: str,
    app_id: checkpoints.CheckpointAppId,
    commits: _CommitLog,
    stamp_batch_id: bool = False,
) -> Callable[[DataFrame, int], None]:
    """foreachBatch of a stateful query: append what a batch emitted (window_revenue in
    update mode: the windows it changed, stamped with the batch id so `latest_windows` can
    take each window's newest row; fulfilment_pairs: the pairs it found), then log the commit."""

    def append(emitted: DataFrame, batch_id: int) -> None:
        if stamp_batch_id:
            emitted = emitted.withColumn("batch_id", F.lit(batch_id).cast("bigint"))
        emitted = emitted.coalesce(1).persist()
        try:
            checkpoints.append_once(emitted, table, app_id(), batch_id)
            commits.record(plan, batch_id, {query: emitted.count()})
        finally:
            emitted.unpersist()
        if table_upkeep.due(batch_id):  # this query's table, between two of its commits
            table_upkeep.compact(emitted.sparkSession, table)

    return append


@dataclass(frozen=True)
class Plan:
    """One streaming query: its result, output mode, sink, and the logic its checkpoint holds."""

    name: str
    frame: DataFrame
    mode: str
    batch_writer: Callable[[DataFrame, int], None] | None = None  # foreachBatch, else the Delta sink
    logic: tuple = ()  # functions and values whose change makes the checkpoint unusable


def has_read_through(checkpoint: str, version: int | None) -> bool:
    """Whether a `clean_lines` reader has committed a batch that read every version up to
    `version`. A reader with no batch has read through only the empty creation commit
    (version 0, `ensure_clean_lines`): the log's appends all hold lines."""
    read = versions_committed(checkpoint)
    return version in (None, 0) if read is None else read >= (version or 0)


def clean_lines_stream(spark, config: KappaConfig) -> DataFrame:
    """The log's valid lines as the stateful queries read them: one `clean_lines` commit
    (one log batch) per micro-batch, so their watermarks move as the log's batches do."""
    return spark.readStream.format("delta").option("maxFilesPerTrigger", 1).load(config.table(CLEAN_LINES))


def ensure_clean_lines(spark, config: KappaConfig) -> None:
    """Create the empty `clean_lines` table before any query starts, so the stateful
    queries can start on a log that has no valid line yet (a landing directory that
    starts empty). Its schema is the parser's own.

    A kill while Delta creates it can leave a `_delta_log` folder without commit 0, which
    Delta's builder then refuses as "table doesn't exist"; nothing in a table that never
    committed is data, so that leftover goes first."""
    from delta.tables import DeltaTable

    table = config.table(CLEAN_LINES)
    if latest_version(table) is None:
        shutil.rmtree(table, ignore_errors=True)
        empty = spark.createDataFrame([], "value string, source_file string")
        schema = cleaning.valid_order_lines(cleaning.classify_lines(empty)).schema
        DeltaTable.createIfNotExists(spark).location(table).addColumns(schema).execute()


def plans(spark, config: KappaConfig, layout: InputLayout) -> list[Plan]:
    """The application's streaming queries: the log first, then those reading its clean lines."""
    settings = config.settings
    parsing = (cleaning.classify_lines, cleaning.valid_order_lines)
    results = _additive_results(config, layout, spark)
    commits = _CommitLog(config, layout)
    stateful = ["window_revenue"] if "window_revenue" in config.queries else []
    stateful += ["fulfilment_pairs"] if "fulfilment" in config.queries and layout.shipments_dir is not None else []
    log = cleaning.classify_lines(raw_stream(spark, config, layout))
    chosen = [
        Plan(
            LOG_QUERY,
            log,
            "append",
            _fan_out(
                config,
                results,
                checkpoints.CheckpointAppId(config.checkpoint(LOG_QUERY)),
                commits,
                keep_clean_lines=bool(stateful),
            ),
            logic=(
                *parsing,
                cleaning.quarantined_lines,
                OutcomeCounts,
                totals,
                bool(stateful),
                tuple(results),
                *(QUERIES[q] for q in results),
                Q.result,
                Q.grouped_sum,
                Q.category_revenue,
            ),
        )
    ]
    if stateful:
        ensure_clean_lines(spark, config)
    if "window_revenue" in stateful:
        lines = clean_lines_stream(spark, config)
        chosen.append(
            Plan(
                "window_revenue",
                Q.window_revenue(lines, settings),
                "update",
                _append_emitted(
                    "window_revenue",
                    "window_revenue",
                    config.table("window_revenue"),
                    checkpoints.CheckpointAppId(config.checkpoint("window_revenue")),
                    commits,
                    stamp_batch_id=True,
                ),
                logic=(
                    *parsing,
                    clean_lines_stream,
                    Q.window_revenue,
                    Q.with_order_watermark,
                    latest_windows,
                    settings.window_seconds,
                    settings.slide_seconds,
                    settings.watermark_seconds,
                ),
            )
        )
    if "fulfilment_pairs" in stateful:
        pairs = Q.shipped_pairs(clean_lines_stream(spark, config), shipments_stream(spark, layout), settings)
        chosen.append(
            Plan(
                "fulfilment_pairs",
                pairs,
                "append",
                _append_emitted(
                    "fulfilment_pairs",
                    "fulfilment",
                    config.table("fulfilment_pairs"),
                    checkpoints.CheckpointAppId(config.checkpoint("fulfilment_pairs")),
                    commits,
                ),
                logic=(
                    *parsing,
                    clean_lines_stream,
                    Q.shipped_pairs,
                    Q.parse_shipments,
                    settings.ship_within_seconds,
                    settings.join_order_watermark_seconds,
                    settings.shipment_watermark_seconds,
                ),
            )
        )
    return chosen


def prepare(config: KappaConfig, chosen: list[Plan], report: Callable[[str], None] | None = None) -> None:
    """Check each checkpoint (crash leftovers cleared, logic unchanged) before any query starts."""
    for plan in chosen:
        checkpoints.prepare(
            config.checkpoint(plan.name),
            config.query_name(plan.name),
            checkpoints.fingerprint(plan.logic),
            REPLAY_REMEDY,
            report or say,
        )


def start(spark, config: KappaConfig, chosen: list[Plan]) -> list:
    """Start the queries (their checkpoints `prepare`d)."""
    started = []
    for plan in chosen:
        name = config.query_name(plan.name)
        record_progress(spark, name, config.progress_file(plan.name))
        writer = (
            plan.frame.writeStream.queryName(name)
            .outputMode(plan.mode)
            .option("checkpointLocation", config.checkpoint(plan.name))
        )
        writer = (
            writer.trigger(processingTime=config.processing_interval)
            if config.processing_interval
            else writer.trigger(availableNow=True)
        )
        if plan.batch_writer is not None:
            started.append(writer.foreachBatch(plan.batch_writer).start())
        else:
            started.append(writer.format("delta").start(config.table(plan.name)))
    return started


def run(spark, config: KappaConfig, fresh: bool = False) -> dict[str, str]:
    """Process the whole log (availableNow), then write the results export."""
    serving = serving_version(config.workdir)
    if serving not in (None, config.version) and not fresh:
        raise ValueError(
            f"kappa {config.version} is not the serving version ({serving} is): build a new "
            f"version with `lab kappa replay --version {config.version}`, or pass --fresh to start over"
        )
    if fresh:
        start_over(config)
    config = sized(config, inspect_input(config.input_dir, require_sales=config.source == "files"))
    drain(spark, config)
    if serving_version(config.workdir) is None or fresh:
        cut_over(config.workdir, config.version, "first run" if not fresh else "fresh run")
    return export_results(spark, config)


def start_over(config: KappaConfig) -> None:
    """Forget this version's tables, checkpoints and the build's commit log."""
    shutil.rmtree(config.root, ignore_errors=True)
    CommitLog.for_build(config.workdir, BUILD).clear()


def drain(spark, config: KappaConfig) -> int:
    """One availableNow pass over whatever the log holds now; returns input rows consumed."""
    layout = inspect_input(config.input_dir, require_sales=config.source == "files")
    config = sized(config, layout)
    before = input_rows(config.progress_file(LOG_QUERY))
    chosen = plans(spark, config, layout)
    prepare(config, chosen)
    readers = [p for p in chosen if p.name != LOG_QUERY]
    # The log runs to its end (availableNow). The queries reading its clean lines run beside
    # it, so their batches overlap the log's (availableNow would read only the versions
    # there are when they start): on a processing-time trigger, stopped between batches
    # once each has read the last version the log wrote.
    log = start(spark, config, [p for p in chosen if p.name == LOG_QUERY])
    running = start(spark, replace(config, processing_interval=DELTA_READER_POLL), readers)

    def readers_done() -> bool:
        if any(q.isActive or q.exception() is not None for q in log):
            return False  # a failed log is raised by await_all, never taken for an end
        last = latest_version(config.table(CLEAN_LINES))
        return all(has_read_through(config.checkpoint(p.name), last) for p in readers)

    await_all(log + running, until=readers_done)
    return input_rows(config.progress_file(LOG_QUERY)) - before


def follow(spark, config: KappaConfig, should_stop: Callable[[], bool], fresh: bool = False) -> dict[str, str]:
    """Keep consuming as files or messages arrive (processing-time trigger) until
    `should_stop()`; then stop every query between two micro-batches and write the export."""
    if fresh:
        start_over(config)
    if not config.processing_interval:
        config = replace(config, processing_interval="5 seconds")
    layout = inspect_input(config.input_dir, require_sales=False)  # a landing directory may start empty
    chosen = plans(spark, config, layout)
    prepare(config, chosen)
    queries = start(spark, config, [p for p in chosen if p.name == LOG_QUERY]) + start(
        spark, replace(config, processing_interval=DELTA_READER_POLL), [p for p in chosen if p.name != LOG_QUERY]
    )
    if serving_version(config.workdir) is None:
        cut_over(config.workdir, config.version, "first run")
    with watching_broker(config.kafka_bootstrap if config.source == "kafka" else None):
        await_all(queries, until=should_stop)
    if latest_version(serving_config(config).table(PARTIALS_TABLE)) is None:  # as Lambda says it
        raise RuntimeError("kappa --follow stopped before any line was read: nothing to export")
    return export_results(spark, config)


def landed_sales_files(config: KappaConfig) -> frozenset[str] | None:
    """The log's files now (a landing directory); None for Kafka, whose end a pass reads
    only by draining again."""
    if config.source != "files":
        return None
    return frozenset(p.name for p in inspect_input(config.input_dir, require_sales=False).sales_files)


def replay(spark, config: KappaConfig, max_rounds: int = 50) -> dict:
    """Reprocessing: run `config.version` from the start of the log into its own tables,
    drain again until a pass finds nothing new (caught up with the live log; on a landing
    directory, until no file landed during a pass), then cut readers over atomically. The
    previous version stays readable until dropped."""
    previous = serving_version(config.workdir)
    if previous == config.version:
        raise ValueError(f"{config.version} is already serving: replay into a new version name")
    started = time.monotonic()
    rounds, consumed = 0, 0
    while rounds < max_rounds:
        rounds += 1
        listed = landed_sales_files(config)
        new = drain(spark, config)
        consumed += new
        if new == 0 and rounds > 1:
            break
        if listed is not None and landed_sales_files(config) == listed:
            break  # no file landed while the pass ran: it read every one there is (availableNow)
    caught_up = time.monotonic() - started
    record = cut_over(config.workdir, config.version, f"replayed {consumed} input rows in {rounds} passes")
    return {
        "version": config.version,
        "previous": previous,
        "input_rows": consumed,
        "passes": rounds,
        "catch_up_seconds": round(caught_up, 3),
        "since_utc": record["since_utc"],
    }


def read_partials(spark, config: KappaConfig) -> DataFrame:
    """The partials table summed per query and key: what `totals` reads (summing again is
    exact: decimals and counts)."""
    return (
        spark.read.format("delta")
        .load(config.table(PARTIALS_TABLE))
        .groupBy("query", *PARTIAL_KEYS)
        .agg(*[F.sum(v).cast(kind).alias(v) for v, kind in PARTIAL_VALUES.items()])
    )


def late_lines(config: KappaConfig) -> dict[str, int]:
    """Rows each event-time query dropped as later than its watermark (Spark's own count)."""
    return {
        name: rows_dropped_by_watermark(config.progress_file(name))
        for name in ("window_revenue", "fulfilment_pairs")
        if config.progress_file(name).exists()
    }


def result_table(query: str) -> str:
    """The table a query's result is read from."""
    return {"window_revenue": "window_revenue", "fulfilment": "fulfilment_pairs"}.get(query, PARTIALS_TABLE)


def read_result(spark, config: KappaConfig, query: str, partials: DataFrame) -> DataFrame:
    """A query's current result, in the columns of its export (`partials`: `read_partials`')."""
    if result_table(query) == PARTIALS_TABLE:
        return totals(partials, query)
    table = spark.read.format("delta").load(config.table(result_table(query)))
    if query == "window_revenue":
        return latest_windows(table)
    return Q.fulfilment_from_partials(Q.fulfilment_partials(table))


def serving_config(config: KappaConfig) -> KappaConfig:
    """`config` at the version readers are served (its own when none serves yet)."""
    return replace(config, version=serving_version(config.workdir) or config.version)


def export_results(spark, config: KappaConfig) -> dict[str, str]:
    """Read the serving version's tables and write the results export; query -> status."""
    from delta.tables import DeltaTable

    serving = serving_config(config)
    if not DeltaTable.isDeltaTable(spark, serving.table(PARTIALS_TABLE)):
        raise InputError(f"kappa version {serving.version} has no results under {serving.root}: run it first")

    # read and summed once for every additive query and the accounting, not once each
    partials = read_partials(spark, serving).cache()

    def rows(query: str) -> list[dict] | None:
        table = result_table(query)
        if table != PARTIALS_TABLE and not DeltaTable.isDeltaTable(spark, serving.table(table)):
            return None
        return export_rows(read_result(spark, serving, query, partials), query)

    try:
        outcomes = read_accounting(partials)
        valid = outcomes.pop("valid", 0)
        status = write_results(
            serving.workdir,
            BUILD,
            inspect_input(serving.input_dir, require_sales=False),
            serving.queries,
            raw_lines=valid + sum(outcomes.values()),
            valid_lines=valid,
            quarantine=outcomes,
            quality_dir=serving.quality_dir,
            result_rows=rows,
        )
    finally:
        partials.unpersist()
    late = {
        "version": serving.version,
        "rows_dropped_by_watermark": late_lines(serving),
        "max_files_per_trigger": serving.max_files_per_trigger,
        "source": serving.source,
    }
    write_text_atomic(results_dir(serving.workdir, BUILD) / LATE_FILE, json.dumps(late, indent=2) + "\n")
    return status
