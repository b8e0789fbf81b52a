"""The data-quality gate of shared/quality.py, evaluated by Spark where the lines are.

The suite is shared/quality_checks.py's own (`plan_checks`: the same checks, names, arguments
and skip rules), and so is the report (shared/quality_report.py's `QualityReport`, each result
built by quality_checks' `check_result`), so a Kappa or Lambda report reads exactly like one
made by Great Expectations over pandas (tests/test_quality_spark.py compares the two on
lines that fail every check). Only the evaluation differs: every check's unexpected rows
are counted in one Spark aggregation over the cached batch, instead of collecting the
batch to pandas (the collect, a Python copy of every line and Great Expectations' per-row
work cost several times the ingest itself). Rows of a failing check are fetched for the
examples only when a check fails.

What each expectation counts as unexpected (as Great Expectations does on pandas):
- not null: null values;
- between / match regex: non-null values outside the bounds / not matching (nulls are
  not this expectation's business);
- pair equal: rows not ignored by `ignore_row_if` whose two values differ, a missing
  value next to a present one counting as different.
"""

from __future__ import annotations

from types import SimpleNamespace

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shared.quality import record_report
from shared.quality_checks import (  # the suite and the report's entries (not Great Expectations)
    CATALOGUE_PRICE,
    EXPECTED_REVENUE,
    MAX_EXAMPLES,
    ROW_ID,
    check_result,
    plan_checks,
)
from shared.quality_expectations import QualityExpectations
from shared.quality_report import QualityReport


def _literal(value) -> Column:
    """A bound as a Spark literal; times are naive UTC, so they go through text and the
    session's time zone (UTC), never through the Python process's local zone."""
    if hasattr(value, "isoformat") and hasattr(value, "hour"):
        return F.lit(value.isoformat(sep=" ")).cast("timestamp")
    return F.lit(value)


def _unexpected(check, frame: DataFrame) -> Column:
    """True on the rows `check` counts as unexpected."""
    args = dict(check.kwargs)
    kind = check.expectation
    if kind == "ExpectColumnValuesToNotBeNull":
        return F.col(args["column"]).isNull()
    if kind == "ExpectColumnValuesToBeBetween":
        column = F.col(args["column"])
        inside = F.lit(True)
        if args.get("min_value") is not None:
            low = _literal(args["min_value"])
            inside = inside & (column > low if args.get("strict_min") else column >= low)
        if args.get("max_value") is not None:
            high = _literal(args["max_value"])
            inside = inside & (column < high if args.get("strict_max") else column <= high)
        return column.isNotNull() & ~inside
    if kind == "ExpectColumnValuesToMatchRegex":
        column = F.col(args["column"])
        return column.isNotNull() & ~column.cast("string").rlike(args["regex"])
    if kind == "ExpectColumnPairValuesToBeEqual":
        a, b = F.col(args["column_A"]), F.col(args["column_B"])
        ignore = args.get("ignore_row_if", "both_values_are_missing")
        ignored = {
            "both_values_are_missing": a.isNull() & b.isNull(),
            "either_value_is_missing": a.isNull() | b.isNull(),
            "neither": F.lit(False),
        }[ignore]
        return ~ignored & ~a.eqNullSafe(b)
    raise ValueError(f"no Spark form of {kind} (shared/quality_checks.py's suite has grown: add it here)")


def _with_helper_columns(lines: DataFrame, expectations: QualityExpectations) -> DataFrame:
    """shared/quality_checks.py's helper columns, in Spark: the catalogue's list price beside
    each line (null for an uncatalogued product) and quantity x price (exact decimals)."""
    if expectations.catalogue_prices is not None and "product" in lines.columns:
        prices = lines.sparkSession.createDataFrame(
            sorted(expectations.catalogue_prices.items()), f"product string, {CATALOGUE_PRICE} decimal(12,2)"
        )
        lines = lines.join(F.broadcast(prices), "product", "left")
    if {"quantity", "price"} <= set(lines.columns):
        lines = lines.withColumn(EXPECTED_REVENUE, F.col("quantity") * F.col("price"))
    return lines


class SparkGate:
    """The quality gate over one kind of Spark frame: `with_helpers` adds the suite's helper
    columns, `counts` gives one `count_if` per runnable check (so the counts can ride along
    in an aggregation the caller runs anyway), `report` turns the counts into the report."""

    def __init__(self, columns, expectations: QualityExpectations):
        self.expectations = expectations
        self.checks = plan_checks(expectations)
        self.missing = {c.name: sorted(set(c.needs) - set(columns)) for c in self.checks}
        self.runnable = [c for c in self.checks if c.skipped is None and not self.missing[c.name]]

    def with_helpers(self, frame: DataFrame) -> DataFrame:
        return _with_helper_columns(frame, self.expectations)

    def counts(self, frame: DataFrame, among: Column | None = None) -> list[Column]:
        """Aggregates over `with_helpers(frame)`: the rows (`among` them) each check counts
        as unexpected, named `_quality_<i>`."""
        among = F.lit(True) if among is None else among
        return [
            F.count_if(among & _unexpected(check, frame)).alias(f"_quality_{i}")
            for i, check in enumerate(self.runnable)
        ]

    def report(
        self, rows: int, totals, frame: DataFrame, among: Column | None = None, batch_name: str = "order_lines"
    ) -> QualityReport:
        """The report from `rows` checked and `totals[_quality_<i>]` (summed `counts`); the
        examples of a failing check are read from `frame` (with helpers), `among` its rows."""
        outcomes = {}
        if rows:
            for i, check in enumerate(self.runnable):
                count = int(totals[f"_quality_{i}"])
                unexpected = _unexpected(check, frame) if among is None else among & _unexpected(check, frame)
                examples = _examples(frame, check, unexpected) if count else []
                outcomes[check.name] = SimpleNamespace(
                    success=count == 0,
                    exception_info=None,
                    result={"unexpected_count": count, "partial_unexpected_index_list": examples},
                )
        results = [check_result(check, outcomes.get(check.name), self.missing[check.name]) for check in self.checks]
        return QualityReport(
            suite=batch_name, checked_rows=rows, success=all(r["success"] for r in results), results=results
        )


def validate_on_spark(
    lines: DataFrame, expectations: QualityExpectations, batch_name: str = "order_lines"
) -> QualityReport:
    """shared/quality_checks.validate_order_lines, over a Spark DataFrame of valid order lines."""
    gate = SparkGate(lines.columns, expectations)
    frame = gate.with_helpers(lines)
    totals = frame.agg(F.count(F.lit(1)).alias("_rows"), *gate.counts(frame)).collect()[0]
    return gate.report(int(totals["_rows"]), totals, frame, batch_name=batch_name)


def _examples(frame: DataFrame, check, unexpected: Column) -> list[dict]:
    columns = list(dict.fromkeys(([ROW_ID] if ROW_ID in frame.columns else []) + check.columns))
    return [row.asDict() for row in frame.where(unexpected).select(*columns).limit(MAX_EXAMPLES).collect()]


VALID = "valid"  # the outcome of a line that is not quarantined (shared/cleaning.line_accounting's name)


class OutcomeCounts:
    """The one job over a cached, classified micro-batch that both ingesting builds run
    first: its lines per source file and outcome (`valid` or the quarantine reason), with
    the quality gate's unexpected-row counts among the valid lines riding along (so the
    gate costs no job of its own unless a check fails and examples are fetched)."""

    def __init__(self, classified: DataFrame, expectations: QualityExpectations):
        from shared.cleaning import ORDER_LINE_COLUMNS

        self.gate = SparkGate(ORDER_LINE_COLUMNS, expectations)
        self.checked, self.valid = self.gate.with_helpers(classified), F.col("reason").isNull()
        outcome = F.coalesce("reason", F.lit(VALID)).alias("outcome")
        self.rows = (
            self.checked.groupBy("source_file", outcome)
            .agg(F.count(F.lit(1)).alias("count"), *self.gate.counts(self.checked, among=self.valid))
            .collect()
        )

    def by_outcome(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in self.rows:
            totals[row["outcome"]] = totals.get(row["outcome"], 0) + int(row["count"])
        return totals

    def source_files(self) -> set[str]:
        return {row["source_file"] for row in self.rows}

    def record_report(self, directory, name: str) -> QualityReport | None:
        """The gate's report on the batch's valid lines, recorded as shared/quality.py does."""
        totals = {
            f"_quality_{i}": sum(int(r[f"_quality_{i}"]) for r in self.rows) for i in range(len(self.gate.runnable))
        }
        report = self.gate.report(self.by_outcome().get(VALID, 0), totals, self.checked, among=self.valid)
        return record_report(report, directory, name)
