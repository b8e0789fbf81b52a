"""Kappa's partials table: every additive query's per-micro-batch result in one shape.

Each micro-batch of the log appends, in one Delta commit, the partial result of every
additive query (shared/catalogue.ADDITIVE) and of the line accounting: a row per query and
key, the key as text in `key1`, `key2`..., each summed column in its own. A query's running
result is its partials summed per key (`totals`): sums and counts add up exactly.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shared import queries as Q
from shared.catalogue import ADDITIVE, INTEGER, QUERIES, STRING, columns_of

# Every additive query's partial aggregates share one table, so a micro-batch is one Delta
# commit for all of them (a commit costs about half a second here, whatever its size).
PARTIALS_TABLE = "partials"
# The additive queries (shared/catalogue.ADDITIVE): a micro-batch's partial result adds onto
# their totals. Keys travel as text in as many key columns as the widest key needs, each
# summed column in its own (line_accounting's `lines` too).
PARTIAL_KEYS = tuple(f"key{i + 1}" for i in range(max(len(QUERIES[q].keys) for q in ADDITIVE)))
PARTIAL_VALUES = {
    name: Q.SUM_TYPES[kind]
    for name, kind in {**columns_of((QUERIES[q] for q in ADDITIVE), "sums"), "lines": INTEGER}.items()
}
PARTIALS_SCHEMA = ", ".join(
    ["query string", *(f"{k} string" for k in PARTIAL_KEYS), *(f"{v} {kind}" for v, kind in PARTIAL_VALUES.items())]
)


def _result_columns(query: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(key columns with their kinds, value columns) of an additive query's result."""
    if query == "line_accounting":
        return [("outcome", STRING)], ["lines"]
    spec = QUERIES[query]
    return list(spec.keys), [name for name, _ in spec.values]


def as_partial_rows(query: str, result: DataFrame) -> DataFrame:
    """One query's result over a micro-batch in the shape of the shared partials table:
    the query's name, its keys as text (key1, key2), its values in their own columns."""
    keys, values = _result_columns(query)
    key_columns = [F.col(name).cast("string") for name, _ in keys]
    key_columns += [F.lit(None).cast("string")] * (len(PARTIAL_KEYS) - len(keys))
    return result.select(
        F.lit(query).alias("query"),
        *[column.alias(alias) for column, alias in zip(key_columns, PARTIAL_KEYS)],
        *[(F.col(v) if v in values else F.lit(None)).cast(kind).alias(v) for v, kind in PARTIAL_VALUES.items()],
    )


def accounting_partial_row(outcome: str, lines: int) -> tuple:
    """line_accounting's partial for one outcome, in the partials table's column order
    (the counts come from the batch's first job, not from an aggregation of their own)."""
    values = {"lines": lines}
    return ("line_accounting", outcome, *[None] * (len(PARTIAL_KEYS) - 1), *(values.get(v) for v in PARTIAL_VALUES))


def totals(partials: DataFrame, query: str) -> DataFrame:
    """The running result of an additive query: its partials summed per key (every value
    is a sum or a count), with the keys in their own names and types again."""
    keys, values = _result_columns(query)
    used = PARTIAL_KEYS[: len(keys)]
    summed = (
        partials.where(F.col("query") == query)
        .groupBy(*used)
        .agg(*[F.sum(v).cast(PARTIAL_VALUES[v]).alias(v) for v in values])
    )
    return summed.select(
        *[F.col(k).cast(Q.KEY_TYPES[kind]).alias(name) for k, (name, kind) in zip(used, keys)], *values
    )


def read_accounting(partials: DataFrame) -> dict[str, int]:
    """outcome (`valid` or a quarantine reason) -> lines, from `read_partials`'."""
    rows = totals(partials, "line_accounting").collect()
    return {row["outcome"]: int(row["lines"]) for row in rows}
