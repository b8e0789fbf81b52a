"""The quality gate evaluated by Spark (shared/quality_spark.py, which Kappa and Lambda
use) reports exactly what shared/quality.py's Great Expectations gate over pandas reports."""
import datetime as dt
import json
from decimal import Decimal

import pytest


def _quality_lines(spark):
    from shared.cleaning import ORDER_LINE_COLUMNS

    schema = ", ".join(f"{c} {t}" for c, t in zip(ORDER_LINE_COLUMNS, (
        "string", "string", "int", "decimal(12,2)", "decimal(22,2)", "timestamp", "string", "string", "string",
        "string")))
    t = dt.datetime(2019, 1, 2, 10, 30)
    good = ("1", "Widget", 2, Decimal("5.00"), Decimal("10.00"), t, "1 A St", "Austin", "TX", "73301")
    rows = [good, good,
            ("2", "Widget", 0, Decimal("4.00"), Decimal("0.00"), t, "1 A St", "Austin", "TX", "73301"),  # qty, price
            ("3", "Gadget", 1, Decimal("3.00"), Decimal("4.00"), t, "1 A St", None, "Tx", "7330"),       # revenue..
            ("4", "Other", 1, Decimal("3.00"), None, dt.datetime(2020, 1, 1), "1 A St", "Austin", "TX", "73301"),
            ("5", None, 1, Decimal("3.00"), Decimal("3.00"), dt.datetime(2018, 12, 31, 23, 59), "x", "Dallas",
             "TX", "75001")]
    return spark.createDataFrame(rows, schema)


@pytest.mark.parametrize("with_expectations", [True, False])
def test_spark_quality_gate_reports_what_great_expectations_reports(spark, with_expectations):
    from shared.quality_spark import validate_on_spark
    from shared.quality import QualityExpectations, validate_order_lines

    expectations = QualityExpectations(
        catalogue_prices={"Widget": Decimal("5.00"), "Gadget": Decimal("3.50")},
        earliest=dt.datetime(2019, 1, 1), latest=dt.datetime(2019, 12, 31, 23, 59),
    ) if with_expectations else QualityExpectations()
    lines = _quality_lines(spark)
    on_spark = validate_on_spark(lines, expectations).to_json()
    on_pandas = validate_order_lines(lines.toPandas(), expectations).to_json()

    def without_examples(report):
        return {**report, "results": [{**r, "unexpected_examples": sorted(r["unexpected_examples"])}
                                      for r in report["results"]]}

    assert without_examples(on_spark) == without_examples(on_pandas)
    assert not on_spark["success"]
    failed = {r["check"]: r["unexpected_count"] for r in on_spark["results"] if not r["success"]}
    expected = {"product not null": 1, "city not null": 1, "quantity >= 1": 1, "state is two capital letters": 1,
                "zip is five digits": 1, "revenue = quantity x price": 2}
    if with_expectations:
        expected |= {"price matches catalogue": 2, "order_ts within input range": 2}
    assert failed == expected


def test_spark_quality_gate_passes_clean_lines_and_skips_empty_batches(spark, tmp_path):
    from shared.quality_spark import check_on_spark
    from shared.quality import QualityExpectations

    lines = _quality_lines(spark).limit(2)
    report = check_on_spark(lines, QualityExpectations(), tmp_path, "batch-000001")
    assert report.success and report.checked_rows == 2
    assert json.loads((tmp_path / "batch-000001.json").read_text())["success"]
    assert check_on_spark(lines.limit(0), QualityExpectations(), tmp_path, "batch-000002") is None
    assert not (tmp_path / "batch-000002.json").exists()
