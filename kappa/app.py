"""The Kappa build: one Structured Streaming application over a replayable log.

Every query of the catalogue is its own streaming query over the same source, writing
to its own Delta table with its own checkpoint, so each is exactly once across restarts
and can be replayed alone. Output modes, and why:
- complete: the small keyed aggregates (city, day, product, hour, category, accounting);
  the whole result is a few hundred rows, and complete rewrites it atomically per batch.
- update via foreachBatch MERGE: window_revenue; each batch upserts only the windows it
  changed, the watermark bounds the state, and a replayed batch upserts the same values.
- append: the quarantine (every bad line once), and the stream-stream join pairs through
  foreachBatch with Delta's idempotent writes (txnAppId/txnVersion); a second query reads
  that Delta table as a stream and keeps the fulfilment aggregate (complete).
"""
from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from kappa.progress_log import input_rows, record_progress, rows_dropped_by_watermark
from kappa.versions import BUILD, DEFAULT_VERSION, check_version, cut_over, serving_version
from shared import queries as Q
from shared.atomic import write_text_atomic
from shared.cleaning import classify_lines, line_accounting, quarantined_lines, valid_order_lines
from shared.export import QUERY_NAMES, clear_results, results_dir, write_accounting
from shared.inputs import InputError, InputLayout, inspect_input, read_catalogue, shipments_schema
from shared.quality import check_batch, expectations_from_input, write_summary
from shared.results import write_spark_export
from shared.settings import DEFAULT_KAFKA_BOOTSTRAP, WorkloadSettings
from shared.streaming import plain_failure, await_all

LATE_FILE = "_late.json"
# The join pairs feed the fulfilment aggregate through a Delta table read as a stream.
STAGE_TWO = ("fulfilment",)


@dataclass(frozen=True)
class KappaConfig:
    input_dir: str
    workdir: str
    version: str = DEFAULT_VERSION
    source: str = "files"                   # "files" (landing directory) or "kafka"
    max_files_per_trigger: int | None = 1   # one file per micro-batch: arrival order drives the watermark
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

    def query_name(self, name: str) -> str:
        return f"{BUILD}_{self.version}_{name}"

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"


class CheckpointMismatch(RuntimeError):
    """A checkpoint written by other query logic: reuse would give wrong results."""


def check_broker(bootstrap: str, timeout: float = 5.0) -> None:
    """Fail fast on an unreachable broker (the Kafka source would retry forever)."""
    errors = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return
        except (OSError, ValueError) as error:
            errors.append(f"{address}: {error}")
    raise RuntimeError(f"cannot reach the Kafka broker at {bootstrap} ({'; '.join(errors)}); "
                       "start one with `make kafka-up` or pass --bootstrap")


def raw_stream(spark, config: KappaConfig, layout: InputLayout) -> DataFrame:
    """Raw lines (`value`) with where they came from (`source_file`)."""
    if config.source == "files":
        reader = spark.readStream.format("text")
        if config.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", config.max_files_per_trigger)
        return reader.load(layout.sales_glob).select("value", F.col("_metadata.file_name").alias("source_file"))
    messages = kafka_messages(spark, config.kafka_bootstrap, config.kafka_topic, config.kafka_max_offsets_per_trigger)
    return messages.select(F.col("value").cast("string").alias("value"),
                           F.col("key").cast("string").alias("source_file"))


def kafka_messages(spark, bootstrap: str, topic: str, max_offsets_per_trigger: int | None = None,
                   include_headers: bool = False) -> DataFrame:
    """A topic from its earliest offset, after checking the broker answers at all."""
    check_broker(bootstrap)
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .option("includeHeaders", str(include_headers).lower())
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets_per_trigger)
    return reader.load()


def shipments_stream(spark, layout: InputLayout) -> DataFrame:
    raw = spark.readStream.option("header", True).schema(shipments_schema()).csv(str(layout.shipments_dir))
    return Q.parse_shipments(raw)


def _merge_windows(table: str) -> Callable[[DataFrame, int], None]:
    """foreachBatch: upsert the windows a batch changed (update mode, idempotent)."""

    def upsert(batch: DataFrame, batch_id: int) -> None:
        from delta.tables import DeltaTable

        spark = batch.sparkSession
        if not DeltaTable.isDeltaTable(spark, table):
            batch.limit(0).write.format("delta").save(table)
        (
            DeltaTable.forPath(spark, table).alias("t")
            .merge(batch.alias("b"), "t.window_start = b.window_start AND t.window_end = b.window_end")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )

    return upsert


def _idempotent_append(table: str, app_id: str) -> Callable[[DataFrame, int], None]:
    """foreachBatch: append once per batch id, even when a batch is replayed after a crash."""

    def append(batch: DataFrame, batch_id: int) -> None:
        (batch.write.format("delta").mode("append")
         .option("txnAppId", app_id).option("txnVersion", batch_id).save(table))

    return append


def _quality_gate(config: KappaConfig) -> Callable[[DataFrame, int], None]:
    """foreachBatch: the Great Expectations suite on each micro-batch's valid lines."""
    expectations = expectations_from_input(config.input_dir)

    def gate(batch: DataFrame, batch_id: int) -> None:
        check_batch(batch.toPandas(), expectations, config.quality_dir, f"batch-{batch_id:06d}")

    return gate


@dataclass(frozen=True)
class Plan:
    """One streaming query: its result, output mode and sink."""
    name: str
    frame: DataFrame
    mode: str
    batch_writer: Callable[[DataFrame, int], None] | None = None  # foreachBatch, else the Delta sink


def stage_one_plans(spark, config: KappaConfig, layout: InputLayout) -> list[Plan]:
    """Queries over the log itself."""
    settings = config.settings
    classified = classify_lines(raw_stream(spark, config, layout))
    lines = valid_order_lines(classified)
    wanted = set(config.queries)
    plans = [
        Plan("line_accounting", line_accounting(classified), "complete"),
        Plan("quarantine", quarantined_lines(classified, keep=("source_file",)), "append"),
        Plan("quality_gate", lines, "append", _quality_gate(config)),
    ]
    for name in ("city_revenue", "daily_revenue", "product_sales", "hourly_sales", "city_revenue_v1"):
        if name in wanted:
            plans.append(Plan(name, getattr(Q, name)(lines), "complete"))
    if "window_revenue" in wanted:
        plans.append(Plan("window_revenue", Q.window_revenue(lines, settings), "update",
                          _merge_windows(config.table("window_revenue"))))
    if "category_revenue" in wanted and layout.catalogue is not None:
        plans.append(Plan("category_revenue", Q.category_revenue(lines, read_catalogue(spark, layout)), "complete"))
    if "fulfilment" in wanted and layout.shipments_dir is not None:
        pairs = Q.shipped_pairs(lines, shipments_stream(spark, layout), settings)
        plans.append(Plan("fulfilment_pairs", pairs, "append",
                          _idempotent_append(config.table("fulfilment_pairs"), config.query_name("fulfilment_pairs"))))
    return plans


def stage_two_plans(spark, config: KappaConfig, layout: InputLayout) -> list[Plan]:
    """Queries over stage one's Delta tables, read as streams."""
    from delta.tables import DeltaTable

    if "fulfilment" not in config.queries or layout.shipments_dir is None:
        return []
    pairs_table = config.table("fulfilment_pairs")
    if not DeltaTable.isDeltaTable(spark, pairs_table):  # no pair yet: an empty table to stream from
        spark.createDataFrame([], "ship_ts timestamp, seconds_to_ship long").write.format("delta").save(pairs_table)
    pairs = spark.readStream.format("delta").load(pairs_table)
    return [Plan("fulfilment", Q.fulfilment_partials(pairs), "complete")]


def start(spark, config: KappaConfig, plans: list[Plan]) -> list:
    started = []
    for plan in plans:
        name = config.query_name(plan.name)
        record_progress(spark, name, config.progress_file(plan.name))
        writer = (plan.frame.writeStream.queryName(name).outputMode(plan.mode)
                  .option("checkpointLocation", config.checkpoint(plan.name)))
        writer = writer.trigger(processingTime=config.processing_interval) if config.processing_interval \
            else writer.trigger(availableNow=True)
        if plan.batch_writer is not None:
            started.append(writer.foreachBatch(plan.batch_writer).start())
        else:
            started.append(writer.format("delta").start(config.table(plan.name)))
    return started


# What Spark says when a checkpoint's state or plan does not fit the query now running.
_MISMATCH_SIGNS = ("schema", "SCHEMA", "incompatible", "not compatible", "STATE_STORE", "StateSchema",
                   "number of stateful operators")


def explain_failure(name: str, message: str, checkpoint: str | None) -> Exception:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    if checkpoint and Path(checkpoint, "commits").exists() and any(s in message for s in _MISMATCH_SIGNS):
        return CheckpointMismatch(
            f"streaming query {name} cannot continue from its checkpoint {checkpoint}: it was written by "
            f"different query logic ({first[:300]}). Results stay as last committed. To apply new logic, "
            "replay it into a new version: `lab kappa replay --version <new>`; to start over, remove the "
            "version's folder.")
    return plain_failure(name, message)


def run(spark, config: KappaConfig, fresh: bool = False) -> dict[str, str]:
    """Process the whole log (availableNow), then write the results export."""
    serving = serving_version(config.workdir)
    if serving not in (None, config.version) and not fresh:
        raise ValueError(f"kappa {config.version} is not the serving version ({serving} is): build a new "
                         f"version with `lab kappa replay --version {config.version}`, or pass --fresh to start over")
    if fresh and config.root.exists():
        shutil.rmtree(config.root)
    drain(spark, config)
    if serving_version(config.workdir) is None or fresh:
        cut_over(config.workdir, config.version, "first run" if not fresh else "fresh run")
    return export_results(spark, config)


def drain(spark, config: KappaConfig) -> int:
    """One availableNow pass over whatever the log holds now; returns input rows consumed."""
    layout = inspect_input(config.input_dir, require_sales=config.source == "files")
    before = input_rows(config.progress_file("line_accounting"))
    for plans_of in (stage_one_plans, stage_two_plans):  # stage two reads what stage one wrote
        plans = plans_of(spark, config, layout)
        checkpoints = _checkpoints(config, plans)
        await_all(start(spark, config, plans),
                  explain=lambda name, message: explain_failure(name, message, checkpoints.get(name)))
    return input_rows(config.progress_file("line_accounting")) - before


def _checkpoints(config: KappaConfig, plans: list[Plan]) -> dict[str, str]:
    return {config.query_name(p.name): config.checkpoint(p.name) for p in plans}


def follow(spark, config: KappaConfig, should_stop: Callable[[], bool], poll_seconds: float = 1.0) -> dict[str, str]:
    """Keep consuming as files or messages arrive (processing-time trigger) until
    `should_stop()`; then stop every query cleanly and write the results export."""
    if not config.processing_interval:
        config = replace(config, processing_interval="5 seconds")
    layout = inspect_input(config.input_dir, require_sales=False)  # a landing directory may start empty
    stage_two = stage_two_plans(spark, config, layout)  # first: creates the pairs table it streams from
    plans = stage_one_plans(spark, config, layout) + stage_two
    queries = start(spark, config, plans)
    checkpoints = _checkpoints(config, plans)
    if serving_version(config.workdir) is None:
        cut_over(config.workdir, config.version, "first run")
    try:
        while not should_stop():
            for q in queries:
                if q.exception() is not None:
                    raise explain_failure(q.name, str(q.exception()), checkpoints.get(q.name))
            time.sleep(poll_seconds)
    finally:
        for q in queries:
            q.stop()
    return export_results(spark, config)


def replay(spark, config: KappaConfig, max_rounds: int = 50) -> dict:
    """Reprocessing: run `config.version` from the start of the log into its own tables,
    drain again until a pass finds nothing new (caught up with the live log), then cut
    readers over atomically. The previous version stays readable until dropped."""
    previous = serving_version(config.workdir)
    if previous == config.version:
        raise ValueError(f"{config.version} is already serving: replay into a new version name")
    started = time.monotonic()
    rounds, consumed = 0, 0
    while rounds < max_rounds:
        rounds += 1
        new = drain(spark, config)
        consumed += new
        if new == 0 and rounds > 1:
            break
    caught_up = time.monotonic() - started
    record = cut_over(config.workdir, config.version, f"replayed {consumed} input rows in {rounds} passes")
    return {"version": config.version, "previous": previous, "input_rows": consumed, "passes": rounds,
            "catch_up_seconds": round(caught_up, 3), "since_utc": record["since_utc"]}


def read_accounting(spark, config: KappaConfig) -> dict[str, int]:
    """outcome (`valid` or a quarantine reason) -> lines, from the accounting query's table."""
    rows = spark.read.format("delta").load(config.table("line_accounting")).collect()
    return {row["outcome"]: int(row["lines"]) for row in rows}


def late_lines(config: KappaConfig) -> dict[str, int]:
    """Rows each event-time query dropped as later than its watermark (Spark's own count)."""
    return {name: rows_dropped_by_watermark(config.progress_file(name))
            for name in ("window_revenue", "fulfilment_pairs") if config.progress_file(name).exists()}


def export_results(spark, config: KappaConfig) -> dict[str, str]:
    """Read the serving version's tables and write the results export; query -> status."""
    import json

    from delta.tables import DeltaTable

    serving = replace(config, version=serving_version(config.workdir) or config.version)
    layout = inspect_input(serving.input_dir, require_sales=False)
    skipped = layout.not_applicable()
    clear_results(serving.workdir, BUILD)
    if not DeltaTable.isDeltaTable(spark, serving.table("line_accounting")):
        raise InputError(f"kappa version {serving.version} has no results under {serving.root}: run it first")
    outcomes = read_accounting(spark, serving)
    valid = outcomes.pop("valid", 0)
    write_accounting(serving.workdir, BUILD, valid + sum(outcomes.values()), valid, outcomes)
    write_summary(serving.quality_dir, results_dir(serving.workdir, BUILD))
    late = {"version": serving.version, "rows_dropped_by_watermark": late_lines(serving),
            "max_files_per_trigger": serving.max_files_per_trigger, "source": serving.source}
    write_text_atomic(results_dir(serving.workdir, BUILD) / LATE_FILE, json.dumps(late, indent=2) + "\n")
    status = {}
    for query in serving.queries:
        if query in skipped:
            status[query] = "not applicable: " + skipped[query]
            continue
        source = serving.table(query)
        if not DeltaTable.isDeltaTable(spark, source):
            status[query] = f"no result table in version {serving.version}"
            continue
        result = spark.read.format("delta").load(source)
        if query == "fulfilment":
            result = Q.fulfilment_from_partials(result)
        write_spark_export(result, serving.workdir, BUILD, query)
        status[query] = "written"
    return status
