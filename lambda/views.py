"""Mergeable (additive) views: what the batch and speed layers both compute.

A Lambda serving layer answers a query by merging a batch view and a realtime view,
so each view holds partial aggregates that add up: sums and counts, never averages.

Every query's partial view is kept in one shape, a "wide" row: the query's name, every
key column of the catalogue (each query fills its own, the others stay null) and every
summed column. A layer computes all of its views in one Spark job and collects them
(views are small: one row per key), and the serving layer merges every query in one
aggregation.

Views are stored as view files (JSON lines of wide rows, written whole with an atomic
rename, `write_view_file`): a Delta table per view would cost a snapshot computation
(several Spark jobs) on every write and every read, for a few thousand rows.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shared import queries as Q
from shared.atomic import atomic_text
from shared.catalogue import CATALOGUE, QUERIES, columns_of
from shared.settings import WorkloadSettings

QUERY = "query"
# The wide row: every key column of the catalogue, then every column a view sums
# (shared/catalogue.QuerySpec.sums), with the types the query functions give them.
KEY_TYPES = {name: Q.KEY_TYPES[kind] for name, kind in columns_of(CATALOGUE, "keys").items()}
SUM_TYPES = {name: Q.SUM_TYPES[kind] for name, kind in columns_of(CATALOGUE, "sums").items()}
# Wide rows travel through the driver (collected, then written) with their times as UTC
# wall-clock (timestamp_ntz): Python's datetime for a Spark timestamp is in the process's
# local zone, and the lab never depends on the machine's zone.
_DRIVER_TYPES = {c: ("timestamp_ntz" if t == "timestamp" else t) for c, t in {**KEY_TYPES, **SUM_TYPES}.items()}
DRIVER_SCHEMA = ", ".join([f"{QUERY} string"] + [f"{c} {t}" for c, t in _DRIVER_TYPES.items()])


def key_columns(query: str) -> list[str]:
    return QUERIES[query].key_columns


def partial_view(
    query: str,
    lines: DataFrame,
    settings: WorkloadSettings,
    catalogue: DataFrame | None = None,
    shipments: DataFrame | None = None,
) -> DataFrame:
    """The additive view of one query over some order lines (a batch DataFrame: the
    master at the cutoff, or one speed-layer micro-batch)."""
    if query == "fulfilment":
        return Q.fulfilment_partials(Q.shipped_pairs(lines, Q.needed(shipments, "the shipments", query), settings))
    # No watermark: the speed layer's views live only until the next batch cutoff, so they
    # can afford to keep every window and stay exact on late lines.
    return Q.result(query, lines, settings, catalogue, shipments, watermark=False)


def as_wide(query: str, view: DataFrame) -> DataFrame:
    """One query's partial view as wide rows (its name, its keys and sums, nulls elsewhere)."""
    present = set(key_columns(query)) | set(QUERIES[query].sum_columns)
    return view.select(
        F.lit(query).alias(QUERY),
        *[(F.col(c) if c in present else F.lit(None)).cast(t).alias(c) for c, t in {**KEY_TYPES, **SUM_TYPES}.items()],
    )


def wide_partials(
    queries,
    lines: DataFrame,
    settings: WorkloadSettings,
    catalogue: DataFrame | None = None,
    shipments: DataFrame | None = None,
) -> DataFrame:
    """Every query's partial view over `lines`, as one DataFrame of wide rows (one job)."""
    views = [as_wide(q, partial_view(q, lines, settings, catalogue, shipments)) for q in queries]
    return reduce(DataFrame.union, views)  # by position: as_wide gives every view the same columns


def for_driver(wide: DataFrame) -> DataFrame:
    """Wide rows ready to collect: times as UTC wall-clock (see DRIVER_SCHEMA)."""
    return wide.select(QUERY, *[F.col(c).cast(t).alias(c) for c, t in _DRIVER_TYPES.items()])


def from_driver(spark, rows) -> DataFrame:
    """Collected wide rows (`for_driver`, or read from view files) as a DataFrame of wide rows."""
    columns = [QUERY, *_DRIVER_TYPES]
    frame = spark.createDataFrame([tuple(row[c] for c in columns) for row in rows], DRIVER_SCHEMA)
    return frame.select(QUERY, *[F.col(c).cast(t).alias(c) for c, t in {**KEY_TYPES, **SUM_TYPES}.items()])


def merge_wide(views: DataFrame) -> DataFrame:
    """Serving: add the wide rows of every view up per query and key."""
    return views.groupBy(QUERY, *KEY_TYPES).agg(*[F.sum(c).cast(t).alias(c) for c, t in SUM_TYPES.items()])


def query_result(merged: DataFrame, query: str) -> DataFrame:
    """One query's merged result in the columns of its export (the fulfilment average
    computed from its summed partials)."""
    result = merged.where(F.col(QUERY) == query).select(*key_columns(query), *QUERIES[query].sum_columns)
    if query == "fulfilment":
        return Q.fulfilment_from_partials(result)
    return result


def export_columns(merged: DataFrame) -> DataFrame:
    """The merged wide rows with every export column, times as UTC wall-clock (as
    shared/results.export_rows gives them), for one collect of every query."""
    average = Q.average_hours_half_up("seconds_to_ship", "shipped_lines")
    return for_driver(merged).withColumn("avg_hours_to_ship", F.when(F.col(QUERY) == "fulfilment", average))


def rows_by_query(rows) -> dict[str, list[dict]]:
    """Collected wide rows -> query -> its rows as dicts of its export columns."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        spec = QUERIES[row[QUERY]]
        grouped.setdefault(spec.name, []).append({c: row[c] for c in spec.columns})
    return grouped


def keys_by_query(rows) -> dict[str, set[tuple]]:
    """Collected wide rows -> query -> the set of its keys (what a served result has rows for)."""
    keys: dict[str, set[tuple]] = {}
    for row in rows:
        query = row[QUERY]
        keys.setdefault(query, set()).add(tuple(row[c] for c in key_columns(query)))
    return keys


# ---------------------------------------------------------------------------------------
# View files: wide rows (driver form) as JSON lines, each value as text of its type
# ---------------------------------------------------------------------------------------


def _encode(value, kind: str):
    if value is None or kind in ("string", "int", "bigint"):
        return value
    if kind == "timestamp_ntz":
        return value.isoformat(sep=" ")
    return str(value)  # dates (ISO) and decimals (exact text)


def _decode(value, kind: str):
    if value is None or kind in ("string", "int", "bigint"):
        return value
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "timestamp_ntz":
        return dt.datetime.fromisoformat(value)
    return Decimal(value)


def write_view_file(path, rows) -> Path:
    """Write wide rows (driver form) to `path` whole: a reader sees all of them or the
    file as it was (atomic rename), and it is on disk before this returns (fsync), so a
    micro-batch Spark then marks done cannot lose its view."""
    columns = {QUERY: "string", **_DRIVER_TYPES}
    with atomic_text(path, fsync=True) as handle:
        for row in rows:
            handle.write(json.dumps({c: _encode(row[c], kind) for c, kind in columns.items()}) + "\n")
    return Path(path)


def read_view_file(path) -> list[dict]:
    """The wide rows (driver form) of a view file."""
    columns = {QUERY: "string", **_DRIVER_TYPES}
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return [{c: _decode(record.get(c), kind) for c, kind in columns.items()} for record in records]
