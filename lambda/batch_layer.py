"""The batch layer: recompute every batch view from a snapshot of the master dataset.

A batch run pins the master dataset at one Delta version (the cutoff) and reads it
with time travel, so the view covers exactly the lines committed up to that version.
"""
from __future__ import annotations

from lambda_arch.layout import LambdaConfig
from lambda_arch.views import partial_view
from shared.inputs import inspect_input, read_catalogue, read_shipments


def run_batch_layer(spark, config: LambdaConfig, cutoff: int) -> dict[str, str]:
    layout = inspect_input(config.input_dir, require_sales=False)
    skipped = layout.not_applicable()
    lines = spark.read.format("delta").option("versionAsOf", cutoff).load(config.master)
    catalogue, shipments = read_catalogue(spark, layout), read_shipments(spark, layout)
    written = {}
    for query in config.queries:
        if query in skipped:
            continue
        view = partial_view(query, lines, config.settings, catalogue, shipments)
        path = config.batch_view(cutoff, query)
        view.write.format("delta").mode("overwrite").save(path)
        written[query] = path
    return written
