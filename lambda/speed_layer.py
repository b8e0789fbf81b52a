"""The speed layer: realtime views over the master dataset's appends after the cutoff.

It reads the master dataset as a Delta stream starting at cutoff + 1, so the batch
views (versions 0..cutoff) and the realtime views (cutoff+1..) never overlap and miss
nothing. Its streaming queries:
- `views`: every additive query from one foreachBatch over the cached micro-batch: the
  batch's partial views (lambda/views.py) are computed in one job, collected, and written
  as the batch's view file (`realtime_view_file`: named by the batch id, renamed into
  place whole), so a batch replayed after a crash rewrites its own file and lands once.
  Partials add up: the realtime view is the sum of the batches' files, and the serving
  layer adds that to the batch views.
- `fulfilment`: the stream-stream join of the master's lines with the shipments stream
  (watermarks on both sides; a join runs only in append mode); each batch's new pairs are
  reduced to fulfilment's partials and written the same way. That is the speed layer of
  `lab run lambda --follow`, where shipments keep landing.
- `fulfilment_drain`, in its place in a drain (`lab run lambda`): the input is complete,
  every shipment file is there when the speed layer starts, so each micro-batch's lines
  are joined with them as a batch read (as the batch layer does). The result is the same
  pairs; what it saves is the join's state: the stream-stream join puts every line after
  the cutoff and every shipment of the input into its state store, which on 1,000,000
  lines was the largest cost the Lambda build has and a Spark batch job has not (a
  follow run that resumes a drain's cutoff starts with a batch run: LambdaFollower.start).
- `fulfilment_backfill`: the shipment files the batch views did not read (they landed after
  the batch run listed them: `LambdaConfig.batch_shipments`) joined with the master's lines
  up to the cutoff (a batch read pinned at the cutoff, narrowed to the order times those
  shipments can match). Fulfilment's pairs are thereby split three ways, with no overlap
  and no gap: (line <= cutoff, shipment the batch read) in the batch view, (line <=
  cutoff, later shipment) here, (line > cutoff, any shipment) in `fulfilment`. Without it
  a shipment landing after a batch run, for a line before its cutoff, would wait for the
  next batch run.

After each batch's file is in place, its commit goes to the serving layer's commit log
(serving_layer.ServingCommits). Spark's progress reports go to
LambdaConfig.progress_file (shared/progress_log.py), so `lab bench` can profile them.
"""

from __future__ import annotations

import json

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lambda_arch.layout import SPEED_BACKFILL, SPEED_DRAIN_FULFILMENT, SPEED_FULFILMENT, SPEED_VIEWS, LambdaConfig
from lambda_arch.serving_layer import ServingCommits
from lambda_arch.views import as_wide, for_driver, wide_partials, write_view_file
from shared import checkpoints
from shared import queries as Q
from shared.cleaning import ORDER_LINE_COLUMNS
from shared.delta_versions import versions_read
from shared.inputs import held_catalogue, inspect_input, read_shipments, shipments_schema
from shared.progress_log import STEPS_SUFFIX, BatchSteps
from shared.sequence import file_name_of
from shared.streaming import kept_batch

QUERY_PREFIX = "lambda_speed_"


def _views_batch(
    config: LambdaConfig, cutoff: int, queries, catalogue, commits: ServingCommits, single_partition: bool = False
):
    """foreachBatch of `views`: one read of the micro-batch, every additive query's partials.
    `single_partition` (live micro-batches, small): the batch in one partition, so no
    aggregation needs a shuffle and the whole fan-out is one stage (as Kappa's log does);
    per-stage costs, not rows, dominate a live micro-batch on a small machine."""
    checkpoint = config.speed_checkpoint(cutoff, SPEED_VIEWS)
    steps = BatchSteps(config.progress_file(f"speed_{SPEED_VIEWS}{STEPS_SUFFIX}"))

    def write(batch: DataFrame, batch_id: int) -> None:
        with steps.batch(batch_id) as step:
            with step("keep_and_count"):  # keeps the batch, before the views' stages read it side by side
                lines = batch.select(*ORDER_LINE_COLUMNS)
                lines = kept_batch(lines.coalesce(1) if single_partition else lines)
                if lines.count() == 0:
                    return
            with step("views"):
                rows = for_driver(wide_partials(queries, lines, config.settings, catalogue)).collect()
            with step("view_file_and_commit"):
                write_view_file(config.realtime_view_file(cutoff, SPEED_VIEWS, batch_id), rows)
                commits.speed_commit(SPEED_VIEWS, versions_read(checkpoint, batch_id), queries, rows)

    return write


def _fulfilment_batch(config: LambdaConfig, cutoff: int, commits: ServingCommits, shipments: DataFrame | None = None):
    """foreachBatch of `fulfilment`: the pairs the join emitted, as fulfilment's partials;
    with `shipments` (a drain's `fulfilment_drain`), the batch is lines, paired here."""
    name = SPEED_FULFILMENT if shipments is None else SPEED_DRAIN_FULFILMENT
    checkpoint = config.speed_checkpoint(cutoff, name)

    def write(batch: DataFrame, batch_id: int) -> None:
        pairs = batch if shipments is None else Q.shipped_pairs(batch, shipments, config.settings)
        rows = for_driver(as_wide("fulfilment", Q.fulfilment_partials(pairs))).collect()
        if rows:
            write_view_file(config.realtime_view_file(cutoff, name, batch_id), rows)
        commits.speed_commit(name, versions_read(checkpoint, batch_id), ["fulfilment"], rows)

    return write


def _backfill_batch(config: LambdaConfig, cutoff: int, commits: ServingCommits):
    """foreachBatch of `fulfilment_backfill`: shipments from files the batch views did not
    read, paired with the master's lines up to the cutoff."""
    checkpoint = config.speed_checkpoint(cutoff, SPEED_BACKFILL)
    within = F.expr(f"INTERVAL {config.settings.ship_within_seconds} SECONDS")

    def write(raw: DataFrame, batch_id: int) -> None:
        files = [file_name_of(path) for path in checkpoints.files_of_batch(checkpoint, batch_id)]
        shipments = Q.parse_shipments(raw).persist()
        try:
            bounds = shipments.agg(F.min("ship_ts").alias("first"), F.max("ship_ts").alias("last")).first()
            assert bounds is not None  # an aggregate without groups has one row
            rows = []
            if bounds["first"] is not None:  # a line can match only if ordered within 72 h before a shipment
                lines = (
                    raw.sparkSession.read.format("delta")
                    .option("versionAsOf", cutoff)
                    .load(config.master)
                    .where(
                        (F.col("order_ts") >= F.lit(bounds["first"]) - within)
                        & (F.col("order_ts") <= F.lit(bounds["last"]))
                    )
                )
                pairs = Q.shipped_pairs(lines, shipments, config.settings)
                rows = for_driver(as_wide("fulfilment", Q.fulfilment_partials(pairs))).collect()
        finally:
            shipments.unpersist()
        if rows:
            write_view_file(config.realtime_view_file(cutoff, SPEED_BACKFILL, batch_id), rows)
        commits.speed_commit(SPEED_BACKFILL, None, ["fulfilment"], rows, shipment_files=files)

    return write


def speed_query_name(cutoff: int, name: str, version: str = "") -> str:
    """Named by its cutoff (and view version): at a handoff the next cutoff's speed layer
    may start while this one still serves, and Spark refuses two active queries of one name."""
    return f"{QUERY_PREFIX}{version + '_' if version else ''}after_v{cutoff}_{name}"


def start_speed_layer(
    spark,
    config: LambdaConfig,
    cutoff: int,
    commits: ServingCommits,
    available_now: bool = True,
    interval: str = "2 seconds",
) -> list:
    """Start the speed layer's queries over the master after `cutoff` (a master version
    after it must exist); each micro-batch's commit goes to `commits` (the commit log,
    once the cutoff is published)."""
    layout = inspect_input(config.input_dir, require_sales=False)
    skipped = layout.not_applicable()
    lines = spark.readStream.format("delta").option("startingVersion", cutoff + 1).load(config.master)
    additive = [q for q in config.queries if q not in skipped and q != "fulfilment"]
    plans = []
    if additive:
        plans.append(
            (
                SPEED_VIEWS,
                lines,
                _views_batch(
                    config, cutoff, additive, held_catalogue(spark, layout), commits, single_partition=not available_now
                ),
            )
        )
    if "fulfilment" in config.queries and "fulfilment" not in skipped:
        if available_now:  # a drain: the shipment files there are now are all there will be
            plans.append(
                (
                    SPEED_DRAIN_FULFILMENT,
                    lines,
                    _fulfilment_batch(config, cutoff, commits, read_shipments(spark, layout)),
                )
            )
        else:
            shipments = Q.parse_shipments(
                spark.readStream.option("header", True).schema(shipments_schema()).csv(layout.shipments_glob)
            )
            plans.append(
                (
                    SPEED_FULFILMENT,
                    Q.shipped_pairs(lines, shipments, config.settings),
                    _fulfilment_batch(config, cutoff, commits),
                )
            )
    return _start(spark, config, cutoff, plans, available_now, interval)


def start_backfill(
    spark,
    config: LambdaConfig,
    cutoff: int,
    commits: ServingCommits,
    available_now: bool = False,
    interval: str = "2 seconds",
) -> list:
    """Start fulfilment's backfill for `cutoff` (whose batch views are written: it reads
    which shipment files they paired). A drain (`app.run`) needs none: its batch layer
    reads every shipment file the input has."""
    layout = inspect_input(config.input_dir, require_sales=False)
    record = config.batch_shipments(cutoff)
    if "fulfilment" not in config.queries or "fulfilment" in layout.not_applicable() or not record.exists():
        return []
    paired = json.loads(record.read_text())
    later = spark.readStream.option("header", True).schema(shipments_schema()).csv(layout.shipments_glob)
    if paired:
        later = later.where(~F.col("_metadata.file_name").isin(paired))
    return _start(
        spark,
        config,
        cutoff,
        [(SPEED_BACKFILL, later, _backfill_batch(config, cutoff, commits))],
        available_now,
        interval,
    )


def _start(spark, config: LambdaConfig, cutoff: int, plans, available_now: bool, interval: str) -> list:
    from shared.progress_log import record_progress

    started = []
    for name, frame, batch_writer in plans:
        checkpoint = config.speed_checkpoint(cutoff, name)
        checkpoints.clear_unstarted(checkpoint)  # what a kill before the first batch left behind
        query_name = speed_query_name(cutoff, name, config.version)
        record_progress(spark, query_name, config.progress_file(f"speed_{name}"))
        writer = (
            frame.writeStream.queryName(query_name)
            .outputMode("append")
            .option("checkpointLocation", checkpoint)
            .foreachBatch(batch_writer)
        )
        writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=interval)
        started.append(writer.start())
    return started
