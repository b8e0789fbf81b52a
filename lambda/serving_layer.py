"""The serving layer: answer each query by merging the batch and the realtime view.

The serving pointer (serving.json, replaced atomically) names the cutoff whose batch
views are complete; readers use the batch view of that cutoff plus the realtime view
of the lines after it.
"""
from __future__ import annotations

import json

from pyspark.sql import DataFrame

from lambda_arch.layout import LambdaConfig
from lambda_arch.views import merge_views
from shared import queries as Q
from shared.atomic import write_text_atomic


def publish_cutoff(config: LambdaConfig, cutoff: int) -> None:
    write_text_atomic(config.serving_pointer, json.dumps({"cutoff": cutoff}), fsync=True)


def current_cutoff(config: LambdaConfig) -> int:
    if not config.serving_pointer.exists():
        raise RuntimeError(f"no batch view is published yet ({config.serving_pointer}): run the batch layer")
    return json.loads(config.serving_pointer.read_text())["cutoff"]


def serve(spark, config: LambdaConfig, query: str) -> DataFrame:
    from delta.tables import DeltaTable

    cutoff = current_cutoff(config)
    views = [spark.read.format("delta").load(config.batch_view(cutoff, query))]
    realtime = config.realtime_view(cutoff, query)
    if DeltaTable.isDeltaTable(spark, realtime):
        view = spark.read.format("delta").load(realtime)
        if query == "fulfilment":  # the speed layer keeps raw pairs (append after the join)
            view = Q.fulfilment_partials(view)
        views.append(view)
    return merge_views(query, views)
