"""From a Spark result DataFrame to the results export."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shared.catalogue import QUERIES, TIMESTAMP


def export_rows(df: DataFrame, query: str) -> list[dict]:
    """Collect a (small) result as plain Python values in the export's columns.

    Timestamps go through timestamp_ntz so Python sees the UTC wall clock whatever
    the local zone of this process.
    """
    spec = QUERIES[query]
    columns = [
        F.col(name).cast("timestamp_ntz").alias(name) if kind == TIMESTAMP else F.col(name)
        for name, kind in spec.keys + spec.values
    ]
    return [row.asDict() for row in df.select(*columns).collect()]
