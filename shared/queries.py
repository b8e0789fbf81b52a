"""The query catalogue as pure DataFrame -> DataFrame functions over valid order lines.

Batch and streaming code call the same functions. Event-time queries apply their
watermark only to streaming input, so on a batch DataFrame they give the event-time
truth. Every function returns exactly the columns of its results export (shared.export); the
grouped sums (shared/catalogue.py) are one function, `grouped_sum`, and `result` runs any
query by its name.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shared.catalogue import (
    DATE,
    INTEGER,
    MONEY,
    ONE_PER_LINE,
    ORDER_DATE,
    ORDER_HOUR,
    QUERIES,
    STRING,
    TIMESTAMP,
    QuerySpec,
)
from shared.settings import UNCATALOGUED, WorkloadSettings

MONEY_SUM_TYPE = "decimal(38,2)"
# Spark's types for the catalogue's kinds: of a key column, and of a partial sum (wide enough to add up).
KEY_TYPES = {STRING: "string", DATE: "date", INTEGER: "int", TIMESTAMP: "timestamp"}
SUM_TYPES = {MONEY: MONEY_SUM_TYPE, INTEGER: "bigint"}


def _revenue() -> F.Column:  # the joins' and windows' revenue, as a grouped sum's
    return F.sum("revenue").cast(MONEY_SUM_TYPE).alias("revenue")


def _lines(name: str = "order_lines") -> F.Column:
    return F.count(F.lit(1)).alias(name)


# How each key and value source of a grouped sum (shared/catalogue.py) reads in Spark.
_KEY_EXPRESSIONS = {ORDER_DATE: lambda: F.to_date("order_ts"), ORDER_HOUR: lambda: F.hour("order_ts")}


def _summed(source: str, kind: str) -> F.Column:
    if source == ONE_PER_LINE:
        return F.count(F.lit(1))
    return F.sum(source).cast(MONEY_SUM_TYPE) if kind == MONEY else F.sum(source)


def grouped_sum(lines: DataFrame, spec: QuerySpec) -> DataFrame:
    """A grouped-sum query (spec.group_by / spec.sum_of) over valid order lines."""
    keys = [
        (_KEY_EXPRESSIONS[source]() if source in _KEY_EXPRESSIONS else F.col(source)).alias(name)
        for source, (name, _) in zip(spec.group_by, spec.keys)
    ]
    return lines.groupBy(*keys).agg(
        *[_summed(source, kind).alias(name) for source, (name, kind) in zip(spec.sum_of, spec.values)]
    )


def with_order_watermark(lines: DataFrame, settings: WorkloadSettings) -> DataFrame:
    if not lines.isStreaming:
        return lines
    return lines.withWatermark("order_ts", f"{settings.watermark_seconds} seconds")


def window_revenue(lines: DataFrame, settings: WorkloadSettings, watermark: bool = True) -> DataFrame:
    """watermark=False keeps every window in streaming state (exact, unbounded state):
    only for a stream whose state is thrown away regularly, like Lambda's speed layer."""
    window = F.window("order_ts", f"{settings.window_seconds} seconds", f"{settings.slide_seconds} seconds")
    return (
        (with_order_watermark(lines, settings) if watermark else lines)
        .groupBy(window.alias("window"))
        .agg(_revenue(), _lines())
        .select(
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "revenue",
            "order_lines",
        )
    )


def category_revenue(lines: DataFrame, catalogue: DataFrame) -> DataFrame:
    """Stream-static join with the product catalogue; uncatalogued products are kept."""
    joined = lines.join(F.broadcast(catalogue.select("product", "category", "unit_cost")), "product", "left")
    margin = F.col("quantity") * (F.col("price") - F.coalesce(F.col("unit_cost"), F.col("price")))
    return joined.groupBy(F.coalesce(F.col("category"), F.lit(UNCATALOGUED)).alias("category")).agg(
        _revenue(), F.sum(margin).cast(MONEY_SUM_TYPE).alias("margin")
    )


def shipped_pairs(lines: DataFrame, shipments: DataFrame, settings: WorkloadSettings) -> DataFrame:
    """Order lines joined with their shipments within the time bound: one row per pair."""
    if lines.isStreaming:
        lines = lines.withWatermark("order_ts", f"{settings.join_order_watermark_seconds} seconds")
    if shipments.isStreaming:
        shipments = shipments.withWatermark("ship_ts", f"{settings.shipment_watermark_seconds} seconds")
    o = lines.select("order_id", "product", "order_ts").alias("o")
    s = shipments.select("order_id", "product", "ship_ts").alias("s")
    condition = (
        (F.col("o.order_id") == F.col("s.order_id"))
        & (F.col("o.product") == F.col("s.product"))
        & (F.col("s.ship_ts") >= F.col("o.order_ts"))
        & (F.col("s.ship_ts") <= F.col("o.order_ts") + F.expr(f"INTERVAL {settings.ship_within_seconds} SECONDS"))
    )
    return o.join(s, condition, "inner").select(
        F.col("s.ship_ts").alias("ship_ts"),
        (F.unix_timestamp("s.ship_ts") - F.unix_timestamp("o.order_ts")).alias("seconds_to_ship"),
    )


def fulfilment_partials(pairs: DataFrame) -> DataFrame:
    """Additive partial aggregates (mergeable across layers): lines and seconds per ship date."""
    return pairs.groupBy(F.to_date("ship_ts").alias("ship_date")).agg(
        F.count(F.lit(1)).alias("shipped_lines"), F.sum("seconds_to_ship").alias("seconds_to_ship")
    )


def average_hours_half_up(total_seconds: str, count: str) -> F.Column:
    """Exact mean of seconds in hours, rounded half-up to 2 places, in integer arithmetic.

    hundredths = floor((200 * seconds + 3600 * n) / (2 * 3600 * n)); `div` is exact
    integral division on longs, so nothing passes through floats.
    """
    hundredths = F.expr(f"(({total_seconds}) * 200 + ({count}) * 3600) div (({count}) * 7200)")
    return (hundredths.cast("decimal(38,0)") / F.lit(100)).cast("decimal(20,2)")


def fulfilment_from_partials(partials: DataFrame) -> DataFrame:
    return partials.select(
        "ship_date",
        "shipped_lines",
        average_hours_half_up("seconds_to_ship", "shipped_lines").alias("avg_hours_to_ship"),
    )


def fulfilment(lines: DataFrame, shipments: DataFrame, settings: WorkloadSettings) -> DataFrame:
    return fulfilment_from_partials(fulfilment_partials(shipped_pairs(lines, shipments, settings)))


def needed(side_input: DataFrame | None, what: str, query: str) -> DataFrame:
    """A query's side input, or a clear error (callers skip a query its input makes not applicable)."""
    if side_input is None:
        raise ValueError(f"{query} needs {what}, which this input does not have")
    return side_input


def result(
    query: str,
    lines: DataFrame,
    settings: WorkloadSettings,
    catalogue: DataFrame | None = None,
    shipments: DataFrame | None = None,
    watermark: bool = True,
) -> DataFrame:
    """Any query of the catalogue over valid order lines (with the inputs it needs), in the
    columns of its results export. watermark=False: see window_revenue."""
    spec = QUERIES[query]
    if spec.grouped_sum:
        return grouped_sum(lines, spec)
    if query == "window_revenue":
        return window_revenue(lines, settings, watermark)
    if query == "category_revenue":
        return category_revenue(lines, needed(catalogue, "the product catalogue", query))
    if query == "fulfilment":
        return fulfilment(lines, needed(shipments, "the shipments", query), settings)
    raise KeyError(f"{query}: neither a grouped sum nor a query with a function of its own here")


def parse_catalogue(raw: DataFrame) -> DataFrame:
    """products.csv read with header, all strings -> typed catalogue."""
    return raw.select(
        F.trim("product").alias("product"),
        F.trim("category").alias("category"),
        F.col("unit_cost").cast("decimal(12,2)").alias("unit_cost"),
        F.col("list_price").cast("decimal(12,2)").alias("list_price"),
    )


def parse_shipments(raw: DataFrame) -> DataFrame:
    """shipments/*.csv read with header, all strings -> typed shipments (ANSI: bad rows fail)."""
    return raw.select(
        F.trim("order_id").alias("order_id"),
        F.trim("product").alias("product"),
        F.to_timestamp("ship_time", "yyyy-MM-dd HH:mm:ss").alias("ship_ts"),
        F.trim("carrier").alias("carrier"),
    )
