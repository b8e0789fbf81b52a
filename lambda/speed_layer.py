"""The speed layer: realtime views over the master dataset's appends after the cutoff.

It reads the master dataset as a Delta stream starting at cutoff + 1, so the batch
view (versions 0..cutoff) and the realtime view (cutoff+1..) never overlap and miss
nothing. Realtime views are complete-mode aggregates of the same additive partials,
except fulfilment's: its stream-stream join pairs are appended, and the serving layer
turns them into partials when it reads them.
"""
from __future__ import annotations

from lambda_arch.layout import LambdaConfig
from lambda_arch.views import partial_view
from shared import queries as Q
from shared.inputs import inspect_input, read_catalogue, shipments_schema


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
