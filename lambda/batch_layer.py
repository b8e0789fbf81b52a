"""The batch layer: recompute every batch view from a snapshot of the master dataset.

A batch run pins the master dataset at one Delta version (the cutoff) and reads it
with time travel, so the views cover exactly the lines committed up to that version.
The snapshot is scanned once and cached; every query's partial view is computed from the
cache in one job and collected (views are small: one row per key), and all of them are
written as one view file (lambda/views.py), replacing any earlier attempt at once.
Beside it goes the list of shipment files its fulfilment view read: the speed layer's
fulfilment backfill pairs the shipments that land later with the lines up to the cutoff.
"""

from __future__ import annotations

import json

from lambda_arch.layout import LambdaConfig
from lambda_arch.views import for_driver, wide_partials, write_view_file
from shared.atomic import write_text_atomic
from shared.cleaning import ORDER_LINE_COLUMNS
from shared.inputs import inspect_input, read_catalogue, read_shipments
from shared.sequence import file_name_of


def run_batch_layer(spark, config: LambdaConfig, cutoff: int) -> list:
    """Write the batch views of `cutoff`; returns their wide rows (driver form)."""
    layout = inspect_input(config.input_dir, require_sales=False)
    skipped = layout.not_applicable()
    queries = [q for q in config.queries if q not in skipped]
    rows, shipment_files = [], []
    if queries:
        master = spark.read.format("delta").option("versionAsOf", cutoff).load(config.master)
        lines = master.select(*ORDER_LINE_COLUMNS).persist()
        try:
            lines.count()  # fill the cache once, before the views' stages read it side by side
            catalogue, shipments = read_catalogue(spark, layout), read_shipments(spark, layout)
            if shipments is not None and "fulfilment" in queries:  # the files it lists now, exactly
                shipment_files = sorted(file_name_of(path) for path in shipments.inputFiles())
            rows = for_driver(wide_partials(queries, lines, config.settings, catalogue, shipments)).collect()
        finally:
            lines.unpersist()
    write_text_atomic(config.batch_shipments(cutoff), json.dumps(shipment_files))
    write_view_file(config.batch_views(cutoff), rows)
    return rows
