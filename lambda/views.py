"""Mergeable (additive) views: what the batch and speed layers both compute.

A Lambda serving layer answers a query by merging a batch view and a realtime view,
so each view holds partial aggregates that add up: sums and counts, never averages.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shared import queries as Q
from shared.export import QUERIES
from shared.settings import WorkloadSettings

# query -> the columns a view sums; the key columns are the export's key columns
ADDITIVE = {
    "city_revenue": ("revenue", "order_lines"),
    "daily_revenue": ("revenue", "order_lines"),
    "product_sales": ("quantity", "revenue"),
    "hourly_sales": ("order_lines", "quantity", "revenue"),
    "window_revenue": ("revenue", "order_lines"),
    "category_revenue": ("revenue", "margin"),
    "fulfilment": ("shipped_lines", "seconds_to_ship"),
    "city_revenue_v1": ("revenue",),
}


def partial_view(query: str, lines: DataFrame, settings: WorkloadSettings,
                 catalogue: DataFrame | None = None, shipments: DataFrame | None = None) -> DataFrame:
    """The additive view of one query over some order lines (batch or streaming)."""
    if query == "window_revenue":
        # No watermark: the speed layer's state lives only until the next batch cutoff,
        # so it can afford to keep every window and stay exact on late lines.
        return Q.window_revenue(lines, settings, watermark=False)
    if query == "category_revenue":
        return Q.category_revenue(lines, catalogue)
    if query == "fulfilment":
        return Q.fulfilment_partials(Q.shipped_pairs(lines, shipments, settings))
    return getattr(Q, query)(lines)


def merge_views(query: str, views: list[DataFrame]) -> DataFrame:
    """Serving: add the views up per key, then finish (the fulfilment average)."""
    keys = QUERIES[query].key_columns
    sums = ADDITIVE[query]
    union = views[0]
    for view in views[1:]:
        union = union.unionByName(view)
    merged = union.groupBy(*keys).agg(*[F.sum(c).alias(c) for c in sums])
    for column in sums:
        merged = merged.withColumn(column, F.col(column).cast(union.schema[column].dataType))
    if query == "fulfilment":
        return Q.fulfilment_from_partials(merged)
    return merged
