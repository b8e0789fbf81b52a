"""The master dataset: an immutable, append-only Delta table of valid order lines.

Ingestion is one streaming query over the landing directory (whole files, about
`LambdaConfig.batch_mb` a micro-batch) or the replayer's Kafka topic (`--source kafka`:
a drain takes the topic in one batch), whose foreachBatch parses each micro-batch once,
caches it, and from that cache, side by side:
- appends the valid lines to the master idempotently (shared/checkpoints.append_once:
  the commit marked with the ingest checkpoint's query id and the batch id), so a batch
  replayed after a crash is not appended twice;
- writes the other lines, with their reason, to the quarantine (parquet, one folder per
  batch, rewritten whole by a replay: a Delta commit there would cost as much as the
  master's for a hundredth of the lines);
- records the quality gate's report on the valid lines (shared/quality_spark.py:
  shared/quality_checks.py's suite, counted by Spark in the job that fills the cache).
That first job also counts the batch's lines per file and outcome, for two side logs
written after the appends: `ingest_log.csv` (lines per batch and outcome: the line
accounting) and `master_seq.csv` (the master version that holds the batch's lines and the
highest input `seq` it read, shared/sequence.py: what a view over master versions <= v
includes, for the commit log). A replayed batch reads the same files, so it writes the
same rows again: readers take each batch's rows once.
"""

from __future__ import annotations

import csv
import math
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lambda_arch.layout import LambdaConfig
from shared import checkpoints
from shared.cleaning import classify_lines, quarantined_lines, valid_order_lines
from shared.commit_log import append_csv_rows
from shared.delta_log import latest_version, next_version
from shared.delta_versions import VersionSeqLog
from shared.inputs import InputLayout, inspect_input
from shared.inputs import files_per_trigger as sized_files_per_trigger  # Kappa's size rule
from shared.kafka import kafka_messages
from shared.progress_log import STEPS_SUFFIX, BatchSteps, record_progress
from shared.quality_expectations import expectations_from_input
from shared.quality_spark import VALID, OutcomeCounts
from shared.sequence import LogBatchSeq
from shared.streaming import kept_batch

INGEST_QUERY = "lambda_ingest"
MASTER_SEQ_COLUMNS = ("ingest_batch", "master_version", "max_seq")
INGEST_LOG_COLUMNS = ("ingest_app_id", "ingest_batch", "outcome", "lines")


def quarantine_folder(config: LambdaConfig, batch_id: int) -> str:
    return f"{config.quarantine}/ingest_batch={batch_id}"


def ingest_batch(config: LambdaConfig):
    expectations = expectations_from_input(config.input_dir)
    read = LogBatchSeq(config.checkpoint("ingest"), config.input_dir, config.kafka)
    app_id = checkpoints.CheckpointAppId(config.checkpoint("ingest"))
    keep = ("source_file", "ingest_batch")
    steps = BatchSteps(config.progress_file(f"ingest{STEPS_SUFFIX}"))

    def write(classified: DataFrame, batch_id: int) -> None:
        with steps.batch(batch_id) as step:
            # One parse (in the streaming plan, start_ingest: building the parser's plan here
            # cost 0.4-0.8 s of the driver per micro-batch), kept: every step below reads the
            # kept batch. The first job keeps it and counts, per file and outcome, the lines
            # and the quality gate's unexpected rows.
            with step("read_parse_count_gate"):
                classified = kept_batch(classified.withColumn("ingest_batch", F.lit(batch_id)))
                counts = OutcomeCounts(classified, expectations)
            if not counts.rows:
                return
            with step("seq_and_version"):
                max_seq, version = read.of_batch(batch_id, counts.source_files()), next_version(config.master)
                if max_seq is not None:
                    # before the master version is visible: the speed layer may read it at once
                    master_seq_log(config).record(batch_id, version, max_seq)
            with step("master_and_quarantine_appends"), ThreadPoolExecutor(2) as pool:
                quarantine = quarantined_lines(classified, keep=("source_file",)).coalesce(1).write.mode("overwrite")
                pending = [
                    pool.submit(
                        checkpoints.append_once,
                        valid_order_lines(classified, keep=keep),
                        config.master,
                        app_id(),
                        batch_id,
                    ),
                    pool.submit(quarantine.parquet, quarantine_folder(config, batch_id)),
                ]
                counts.record_report(config.quality_dir, f"batch-{batch_id:06d}")
                for future in pending:
                    future.result()
            with step("ingest_log"):
                record_ingest_counts(config, app_id(), batch_id, counts.by_outcome())
                if max_seq is not None:
                    latest = latest_version(config.master)
                    if latest != version:
                        # nothing was appended (no version created): the current one stands for it
                        master_seq_log(config).record(batch_id, latest, max_seq)

    return write


def record_ingest_counts(config: LambdaConfig, app_id: str, batch_id: int, by_outcome: dict[str, int]) -> None:
    """After a batch's appends: its lines per outcome (`valid` or a quarantine reason)."""
    append_csv_rows(
        config.ingest_log,
        INGEST_LOG_COLUMNS,
        [(app_id, batch_id, outcome, lines) for outcome, lines in sorted(by_outcome.items())],
    )


def master_seq_log(config: LambdaConfig) -> VersionSeqLog:
    """Master version -> highest input seq it includes (recorded before each ingest append)."""
    return VersionSeqLog(config.master_seq_log, MASTER_SEQ_COLUMNS)


def max_seq_through(config: LambdaConfig, version: int | None) -> int:
    """The highest input seq that master versions <= `version` include (NO_SEQ for none)."""
    return master_seq_log(config).max_seq_through(version)


def files_per_trigger(config: LambdaConfig, layout: InputLayout) -> int:
    """Whole files per ingest batch: about `batch_mb` each (the size rule Kappa uses too), and
    at least two batches when there are two files or more (so a cutoff can fall between them)."""
    if config.max_files_per_trigger:
        return config.max_files_per_trigger
    by_size = sized_files_per_trigger(layout, config.batch_mb * 2**20)
    return max(1, min(by_size, math.ceil(len(layout.sales_files) / 2)))


def start_ingest(
    spark, config: LambdaConfig, available_now: bool = True, interval: str = "2 seconds", require_sales: bool = True
):
    checkpoint = config.checkpoint("ingest")
    checkpoints.clear_unstarted(checkpoint)  # what a kill before the first batch left behind
    if config.kafka:  # the replayer's topic: each message a line, keyed by the file it came from
        raw = kafka_messages(spark, *config.kafka).select(
            F.col("value").cast("string").alias("value"), F.col("key").cast("string").alias("source_file")
        )
    else:
        layout = inspect_input(config.input_dir, require_sales=require_sales)
        reader = spark.readStream.format("text")
        if available_now or config.max_files_per_trigger:  # following: whatever has arrived, in one batch
            reader = reader.option("maxFilesPerTrigger", files_per_trigger(config, layout))
        raw = reader.load(layout.sales_glob).select("value", F.col("_metadata.file_name").alias("source_file"))
    record_progress(spark, INGEST_QUERY, config.progress_file("ingest"))
    writer = (
        classify_lines(raw)
        .writeStream.queryName(INGEST_QUERY)
        .option("checkpointLocation", checkpoint)
        .foreachBatch(ingest_batch(config))
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=interval)
    return writer.start()


def master_version(spark, config: LambdaConfig) -> int | None:
    """The master dataset's newest version (None before the first append)."""
    return latest_version(config.master)


def accounting(spark, config: LambdaConfig) -> dict:
    """raw = valid + quarantined over everything ingested, with the reasons (from the
    ingest log: each batch's rows once, however often a crash made it write them)."""
    lines: dict[tuple[str, str, str], int] = {}
    if config.ingest_log.exists():
        with open(config.ingest_log, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                lines[(row["ingest_app_id"], row["ingest_batch"], row["outcome"])] = int(row["lines"])
    by_outcome: dict[str, int] = {}
    for (_, _, outcome), count in lines.items():
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
    valid = by_outcome.pop(VALID, 0)
    return {"raw_lines": valid + sum(by_outcome.values()), "valid_lines": valid, "quarantine": by_outcome}
