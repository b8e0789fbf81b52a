"""The quality gate evaluated by Spark (shared/quality_spark.py, which Kappa and Lambda
use) reports exactly what shared/quality_checks.py's Great Expectations gate over pandas reports."""

import datetime as dt
import json
from decimal import Decimal

import pytest


def _quality_lines(spark):
    from shared.cleaning import ORDER_LINE_COLUMNS

    schema = ", ".join(
        f"{c} {t}"
        for c, t in zip(
            ORDER_LINE_COLUMNS,
            (
                "string",
                "string",
                "int",
                "decimal(12,2)",
                "decimal(22,2)",
                "timestamp",
                "string",
                "string",
                "string",
                "string",
            ),
        )
    )
    t = dt.datetime(2019, 1, 2, 10, 30)
    good = ("1", "Widget", 2, Decimal("5.00"), Decimal("10.00"), t, "1 A St", "Austin", "TX", "73301")
    rows = [
        good,
        good,
        ("2", "Widget", 0, Decimal("4.00"), Decimal("0.00"), t, "1 A St", "Austin", "TX", "73301"),  # qty, price
        ("3", "Gadget", 1, Decimal("3.00"), Decimal("4.00"), t, "1 A St", None, "Tx", "7330"),  # revenue..
        ("4", "Other", 1, Decimal("3.00"), None, dt.datetime(2020, 1, 1), "1 A St", "Austin", "TX", "73301"),
        (
            "5",
            None,
            1,
            Decimal("3.00"),
            Decimal("3.00"),
            dt.datetime(2018, 12, 31, 23, 59),
            "x",
            "Dallas",
            "TX",
            "75001",
        ),
    ]
    return spark.createDataFrame(rows, schema)


@pytest.mark.parametrize("with_expectations", [True, False])
def test_spark_quality_gate_reports_what_great_expectations_reports(spark, with_expectations):
    from shared.quality_checks import validate_order_lines
    from shared.quality_expectations import QualityExpectations
    from shared.quality_spark import validate_on_spark

    expectations = (
        QualityExpectations(
            catalogue_prices={"Widget": Decimal("5.00"), "Gadget": Decimal("3.50")},
            earliest=dt.datetime(2019, 1, 1),
            latest=dt.datetime(2019, 12, 31, 23, 59),
        )
        if with_expectations
        else QualityExpectations()
    )
    lines = _quality_lines(spark)
    on_spark = validate_on_spark(lines, expectations).to_json()
    on_pandas = validate_order_lines(lines.toPandas(), expectations).to_json()

    def without_examples(report):
        return {
            **report,
            "results": [{**r, "unexpected_examples": sorted(r["unexpected_examples"])} for r in report["results"]],
        }

    assert without_examples(on_spark) == without_examples(on_pandas)
    assert not on_spark["success"]
    failed = {r["check"]: r["unexpected_count"] for r in on_spark["results"] if not r["success"]}
    expected = {
        "product not null": 1,
        "city not null": 1,
        "quantity >= 1": 1,
        "state is two capital letters": 1,
        "zip is five digits": 1,
        "revenue = quantity x price": 2,
    }
    if with_expectations:
        expected |= {"price matches catalogue": 2, "order_ts within input range": 2}
    assert failed == expected


def test_outcome_counts_count_lines_per_outcome_and_gate_only_the_valid_ones(spark, tmp_path):
    """The builds' first job over a classified batch: lines per file and outcome, and the
    gate's report on its valid lines, the same as the gate run over those lines alone."""
    from pyspark.sql import functions as F

    from shared.quality_expectations import QualityExpectations
    from shared.quality_spark import OutcomeCounts, validate_on_spark

    lines = _quality_lines(spark)
    valid = lines.withColumn("reason", F.lit(None).cast("string")).withColumn(
        "source_file", F.when(F.col("order_id") == "1", "a.csv").otherwise("b.csv")
    )
    quarantined = valid.limit(1).select(
        *[F.lit(None).cast(f.dataType).alias(f.name) for f in lines.schema],
        F.lit("bad price").alias("reason"),
        F.lit("c.csv").alias("source_file"),
    )
    counts = OutcomeCounts(valid.unionByName(quarantined), QualityExpectations())
    assert counts.by_outcome() == {"valid": 6, "bad price": 1}
    assert counts.source_files() == {"a.csv", "b.csv", "c.csv"}
    report = counts.record_report(tmp_path, "batch-000001")
    assert report.to_json() == validate_on_spark(lines, QualityExpectations()).to_json()
    assert not report.success and json.loads((tmp_path / "batch-000001.json").read_text())["checked_rows"] == 6

    only_quarantined = OutcomeCounts(quarantined, QualityExpectations())
    assert only_quarantined.record_report(tmp_path, "batch-000002") is None  # nothing valid: no report
    assert not (tmp_path / "batch-000002.json").exists()
    assert OutcomeCounts(valid.limit(2), QualityExpectations()).record_report(tmp_path, "batch-000003").success
