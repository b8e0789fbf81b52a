"""The master dataset: an immutable, append-only Delta table of valid order lines.

Ingestion is a streaming query over the landing directory whose foreachBatch appends
each micro-batch with Delta's idempotent-write options (txnAppId, txnVersion = batch id),
so a batch replayed after a crash is not appended twice.

Each ingest batch also records, in a small side log (`master_seq.csv`), the master version
that holds its lines and the highest input `seq` it read (shared/sequence.py, from the
lines' source file names): what a view over master versions <= v includes, for the
commit log.
"""
from __future__ import annotations

import csv

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lambda_arch.layout import LambdaConfig
from shared.cleaning import classify_lines, quarantined_lines, valid_order_lines
from shared.commit_log import NO_SEQ, append_csv_rows
from shared.inputs import inspect_input
from shared.quality import check_batch, expectations_from_input
from shared.sequence import SequenceMap

INGEST_APP_ID = "lambda-master-ingest"
MASTER_SEQ_COLUMNS = ("ingest_batch", "master_version", "max_seq")


def _idempotent_append(df: DataFrame, path: str, batch_id: int, app_id: str) -> None:
    (
        df.write.format("delta").mode("append")
        .option("txnAppId", app_id).option("txnVersion", batch_id)
        .save(path)
    )


def ingest_batch(config: LambdaConfig):
    expectations = expectations_from_input(config.input_dir)
    sequence = SequenceMap(config.input_dir)   # cached across batches: landed files never change

    def write(raw: DataFrame, batch_id: int) -> None:
        classified = classify_lines(raw).withColumn("ingest_batch", F.lit(batch_id)).cache()
        try:
            check_batch(valid_order_lines(classified).toPandas(), expectations, config.quality_dir,
                        f"batch-{batch_id:06d}")
            # per file too: the same job also gives the file names the batch read
            counts = classified.groupBy("source_file", F.col("reason").isNull().alias("valid")).count().collect()
            valid = sum(r["count"] for r in counts if r["valid"])
            quarantined = sum(r["count"] for r in counts if not r["valid"])
            keep = ("source_file", "ingest_batch")
            _idempotent_append(valid_order_lines(classified, keep=keep), config.master, batch_id, INGEST_APP_ID)
            _idempotent_append(quarantined_lines(classified, keep=keep), config.quarantine, batch_id,
                               INGEST_APP_ID + "-quarantine")
            log = raw.sparkSession.createDataFrame(
                [(batch_id, valid + quarantined, valid, quarantined)],
                "ingest_batch long, raw_lines long, valid_lines long, quarantined_lines long",
            )
            _idempotent_append(log, config.ingest_log, batch_id, INGEST_APP_ID + "-log")
            max_seq = sequence.max_seq({r["source_file"] for r in counts})
            if max_seq is not None:
                record_master_seq(config, batch_id, master_version(raw.sparkSession, config), max_seq)
        finally:
            classified.unpersist()

    return write


def record_master_seq(config: LambdaConfig, batch_id: int, version: int | None, max_seq: int) -> None:
    """After a batch's append: master versions <= `version` include input up to `max_seq`.

    A batch without valid lines may add no master version; then the latest one before it
    stands for it (its lines change no result). A batch replayed after a crash may add a
    second, identical row: harmless, readers take maxima.
    """
    append_csv_rows(config.master_seq_log, MASTER_SEQ_COLUMNS,
                    [(batch_id, NO_SEQ if version is None else version, max_seq)])


def max_seq_through(config: LambdaConfig, version: int) -> int:
    """The highest input seq that master versions <= `version` include (NO_SEQ for none)."""
    if not config.master_seq_log.exists():
        return NO_SEQ
    with open(config.master_seq_log, encoding="utf-8", newline="") as handle:
        return max((int(r["max_seq"]) for r in csv.DictReader(handle) if int(r["master_version"]) <= version),
                   default=NO_SEQ)


def start_ingest(spark, config: LambdaConfig, available_now: bool = True, interval: str = "2 seconds"):
    layout = inspect_input(config.input_dir)
    reader = spark.readStream.format("text")
    if config.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", config.max_files_per_trigger)
    raw = reader.load(layout.sales_glob).select("value", F.col("_metadata.file_name").alias("source_file"))
    writer = (
        raw.writeStream.queryName("lambda_ingest")
        .option("checkpointLocation", config.checkpoint("ingest"))
        .foreachBatch(ingest_batch(config))
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=interval)
    return writer.start()


def master_version(spark, config: LambdaConfig) -> int | None:
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, config.master):
        return None
    return DeltaTable.forPath(spark, config.master).history(1).collect()[0]["version"]


def accounting(spark, config: LambdaConfig) -> dict:
    """raw = valid + quarantined over everything ingested, with the reasons."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, config.ingest_log):
        return {"raw_lines": 0, "valid_lines": 0, "quarantine": {}}
    totals = spark.read.format("delta").load(config.ingest_log).agg(
        F.sum("raw_lines").alias("raw"), F.sum("valid_lines").alias("valid")
    ).collect()[0]
    reasons = {}
    if DeltaTable.isDeltaTable(spark, config.quarantine):
        reasons = {r["reason"]: r["count"] for r in
                   spark.read.format("delta").load(config.quarantine).groupBy("reason").count().collect()}
    return {"raw_lines": int(totals["raw"] or 0), "valid_lines": int(totals["valid"] or 0), "quarantine": reasons}
