"""The Kappa build: one Structured Streaming application over a replayable log.

Every query of the catalogue is its own streaming query over the same source, writing
to its own Delta table with its own checkpoint, so each is exactly once across restarts
and can be replayed alone. Output modes, and why:
- complete: the small keyed aggregates (city, day, product, hour, category, accounting);
  the whole result is a few hundred rows, and complete rewrites it atomically per batch.
- update via foreachBatch MERGE: window_revenue; each batch upserts only the windows it
  changed, the watermark bounds the state, and a replayed batch upserts the same values.
- append: quarantine (every bad line once) and the stream-stream join pairs
  (join output is final once emitted).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shared import queries as Q
from shared.cleaning import classify_lines, line_accounting, quarantined_lines, valid_order_lines
from shared.export import QUERY_NAMES, clear_results, results_dir, write_accounting
from shared.inputs import InputLayout, inspect_input, read_catalogue, shipments_schema
from shared.quality import check_batch, expectations_from_input, write_summary
from shared.results import write_spark_export
from shared.settings import WorkloadSettings

BUILD = "kappa"


@dataclass(frozen=True)
class KappaConfig:
    input_dir: str
    workdir: str
    version: str = "v1"
    source: str = "files"                # "files" (landing directory) or "kafka"
    max_files_per_trigger: int | None = None
    processing_interval: str | None = None  # None: availableNow (drain and stop)
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic: str = "sales"
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)

    @property
    def root(self) -> Path:
        return Path(self.workdir) / BUILD / self.version

    def table(self, name: str) -> str:
        return str(self.root / "tables" / name)

    def checkpoint(self, name: str) -> str:
        return str(self.root / "checkpoints" / name)

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"


def raw_stream(spark, config: KappaConfig, layout: InputLayout) -> DataFrame:
    """Raw lines (`value`) with where they came from (`source_file`)."""
    if config.source == "files":
        reader = spark.readStream.format("text")
        if config.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", config.max_files_per_trigger)
        return reader.load(layout.sales_glob).select("value", F.col("_metadata.file_name").alias("source_file"))
    if config.source == "kafka":
        return (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", config.kafka_bootstrap)
            .option("subscribe", config.kafka_topic)
            .option("startingOffsets", "earliest")
            .option("failOnDataLoss", "true")
            .load()
            .select(F.col("value").cast("string").alias("value"), F.col("key").cast("string").alias("source_file"))
        )
    raise ValueError(f"unknown source {config.source!r}: use files or kafka")


def shipments_stream(spark, layout: InputLayout) -> DataFrame:
    raw = spark.readStream.option("header", True).schema(shipments_schema()).csv(layout.shipments_glob)
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


def _quality_gate(config: KappaConfig) -> Callable[[DataFrame, int], None]:
    """foreachBatch: the Great Expectations suite on each micro-batch's valid lines."""
    expectations = expectations_from_input(config.input_dir)

    def gate(batch: DataFrame, batch_id: int) -> None:
        check_batch(batch.toPandas(), expectations, config.quality_dir, f"batch-{batch_id:06d}")

    return gate


def start_queries(spark, config: KappaConfig) -> list:
    """Start every streaming query of the application; returns the StreamingQuery handles."""
    layout = inspect_input(config.input_dir, require_sales=config.source == "files")
    settings = config.settings
    classified = classify_lines(raw_stream(spark, config, layout))
    lines = valid_order_lines(classified)
    catalogue = read_catalogue(spark, layout)
    plans: dict[str, tuple[DataFrame, str]] = {
        "line_accounting": (line_accounting(classified), "complete"),
        "quarantine": (quarantined_lines(classified, keep=("source_file",)), "append"),
        "city_revenue": (Q.city_revenue(lines), "complete"),
        "daily_revenue": (Q.daily_revenue(lines), "complete"),
        "product_sales": (Q.product_sales(lines), "complete"),
        "hourly_sales": (Q.hourly_sales(lines), "complete"),
        "city_revenue_v1": (Q.city_revenue_v1(lines), "complete"),
    }
    if catalogue is not None:
        plans["category_revenue"] = (Q.category_revenue(lines, catalogue), "complete")
    if layout.shipments_dir is not None:
        pairs = Q.shipped_pairs(lines, shipments_stream(spark, layout), settings)
        plans["fulfilment_pairs"] = (pairs, "append")
    wanted = set(config.queries) | {"line_accounting", "quarantine"}
    if "fulfilment" in wanted:
        wanted.add("fulfilment_pairs")
    started = []
    for name, (df, mode) in plans.items():
        if name not in wanted:
            continue
        writer = (
            df.writeStream.queryName(f"{BUILD}_{config.version}_{name}")
            .format("delta")
            .outputMode(mode)
            .option("checkpointLocation", config.checkpoint(name))
        )
        started.append(_with_trigger(writer, config).start(config.table(name)))
    gate = (
        lines.writeStream.queryName(f"{BUILD}_{config.version}_quality_gate")
        .option("checkpointLocation", config.checkpoint("quality_gate"))
        .foreachBatch(_quality_gate(config))
    )
    started.append(_with_trigger(gate, config).start())
    if "window_revenue" in wanted:
        writer = (
            Q.window_revenue(lines, settings)
            .writeStream.queryName(f"{BUILD}_{config.version}_window_revenue")
            .outputMode("update")
            .option("checkpointLocation", config.checkpoint("window_revenue"))
            .foreachBatch(_merge_windows(config.table("window_revenue")))
        )
        started.append(_with_trigger(writer, config).start())
    return started


def _with_trigger(writer, config: KappaConfig):
    if config.processing_interval:
        return writer.trigger(processingTime=config.processing_interval)
    return writer.trigger(availableNow=True)


def await_all(queries: list, poll_seconds: float = 0.5) -> None:
    """Wait for every query to finish (availableNow) and fail loudly if one failed."""
    pending = list(queries)
    while pending:
        for q in list(pending):
            if not q.isActive:
                pending.remove(q)
                if q.exception() is not None:
                    for other in pending:
                        other.stop()
                    raise RuntimeError(f"streaming query {q.name} failed: {q.exception()}")
        time.sleep(poll_seconds)


def export_results(spark, config: KappaConfig) -> dict[str, str]:
    """Read each result table and write the results export; returns query -> status."""
    from delta.tables import DeltaTable

    layout = inspect_input(config.input_dir, require_sales=False)
    skipped = layout.not_applicable()
    clear_results(config.workdir, BUILD)
    outcomes = read_accounting(spark, config)
    valid = outcomes.pop("valid", 0)
    write_accounting(config.workdir, BUILD, valid + sum(outcomes.values()), valid, outcomes)
    write_summary(config.quality_dir, results_dir(config.workdir, BUILD))
    status = {}
    for query in config.queries:
        if query in skipped:
            status[query] = "not applicable: " + skipped[query]
            continue
        if query == "fulfilment":
            source = config.table("fulfilment_pairs")
            result = Q.fulfilment_from_partials(Q.fulfilment_partials(spark.read.format("delta").load(source)))
        else:
            source = config.table(query)
            result = spark.read.format("delta").load(source) if DeltaTable.isDeltaTable(spark, source) else None
        if result is None:
            status[query] = "no result table"
            continue
        write_spark_export(result, config.workdir, BUILD, query)
        status[query] = "written"
    return status


def read_accounting(spark, config: KappaConfig) -> dict[str, int]:
    """outcome (`valid` or a quarantine reason) -> lines, from the accounting query's table."""
    rows = spark.read.format("delta").load(config.table("line_accounting")).collect()
    return {row["outcome"]: int(row["lines"]) for row in rows}


def run(spark, config: KappaConfig, fresh: bool = False) -> dict[str, str]:
    """Process the whole log (availableNow), then write the results export."""
    if fresh and config.root.exists():
        shutil.rmtree(config.root)
    await_all(start_queries(spark, config))
    return export_results(spark, config)
