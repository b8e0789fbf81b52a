"""The serving layer: answer each query by merging the batch and the realtime view.

The serving pointer (serving.json, replaced atomically) names the cutoff whose batch
views are complete; readers use the batch view of that cutoff plus the realtime view
of the lines after it.

Commit log (shared/commit_log.py): a row per query when a cutoff is published
(`log_published_cutoff`) and after each speed-layer commit (speed_layer.SpeedCommitLogger),
each with the highest input seq that serving can then answer for.
"""
from __future__ import annotations

import json
import time

from pyspark.sql import DataFrame

from lambda_arch.layout import LambdaConfig
from lambda_arch.master_dataset import max_seq_through
from lambda_arch.views import merge_views
from shared import queries as Q
from shared.atomic import write_text_atomic
from shared.commit_log import CommitLog


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


def log_published_cutoff(spark, config: LambdaConfig, cutoff: int, queries) -> list:
    """Commit-log rows once a cutoff is published (call right after `publish_cutoff`):
    serving now answers each query from that cutoff's batch view, which includes master
    versions <= cutoff. `rows` = the batch view's rows: the served result's, as the new
    cutoff's realtime view starts empty (a restart that finds one already there is the
    exception)."""
    visible_at = time.time()   # readable since publish_cutoff returned; counting comes after
    max_seq = max_seq_through(config, cutoff)
    rows = {query: spark.read.format("delta").load(config.batch_view(cutoff, query)).count() for query in queries}
    return CommitLog(config.commit_log).append_many(list(queries), max_seq, rows, visible_at)
