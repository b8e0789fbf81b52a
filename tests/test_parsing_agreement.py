"""The three implementations of docs/data-rules.md agree line by line: Spark SQL
(shared.cleaning), the legacy build's Python parser and the oracle's."""
import datetime as dt
from decimal import Decimal

import pytest

from experiments.oracle import classify_line
from legacy_dstream.parsing import parse_line

GOOD = '176558,USB-C Charging Cable,2,11.95,04/19/19 08:46,"917 1st St, Dallas, TX 75001"'
CASES = [
    (GOOD, None),
    ("Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address", "header"),
    (",,,,,", "blank"),
    ("", "blank"),
    ("  ,  ,,,,", "blank"),
    ('1,iPhone,1,700,04/19/19 08:46', "field_count"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001",extra', "field_count"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001', "field_count"),  # odd quotes
    ('1,,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "missing_field"),
    ('1,iPhone,two,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,0,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,-1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,1.5,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,1234567890,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_quantity"),
    ('1,iPhone,1,12.345,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_price"),
    ('1,iPhone,1,0.00,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_price"),
    ('1,iPhone,1,abc,04/19/19 08:46,"1 A St, Dallas, TX 75001"', "bad_price"),
    ('1,iPhone,1,700,02/29/19 08:46,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,13/01/19 08:46,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,01/01/19 24:00,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,1/1/19 08:46,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,2019-04-01 10:00,"1 A St, Dallas, TX 75001"', "bad_date"),
    ('1,iPhone,1,700,04/19/19 08:46,no commas here', "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas"', "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, Texas"', "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 7500"', "bad_address"),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, tx 75001"', "bad_address"),
    ('1,"Cable ""XL""",3,2.5,02/29/20 23:59,"9 B Ave, Portland, ME 04101"', None),
    (' 7 , AA Batteries (4-pack) , 4 , 3.84 , 12/31/99 00:00 ,"1 A St, Portland, OR 97035"', None),
    ('1,iPhone,1,700,04/19/19 08:46,"1 A St, Dallas, TX 75001"', None),
]


@pytest.fixture(scope="module")
def spark_rows(spark):
    from shared.cleaning import classify_lines

    df = spark.createDataFrame([(i, text) for i, (text, _) in enumerate(CASES)], "i int, value string")
    return {r["i"]: r.asDict() for r in classify_lines(df).collect()}


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[1] or "valid" for c in CASES])
def test_three_parsers_agree(index, spark_rows):
    text, expected_reason = CASES[index]
    oracle_record, oracle_reason = classify_line(text)
    legacy_record, legacy_reason = parse_line(text)
    spark_row = spark_rows[index]
    assert oracle_reason == expected_reason
    assert legacy_reason == expected_reason
    assert spark_row["reason"] == expected_reason
    if expected_reason is None:
        fields = ("order_id", "product", "quantity", "price", "revenue", "order_ts", "street", "city", "state", "zip")
        as_oracle = {f: oracle_record[f] for f in fields}
        assert as_oracle == legacy_record._asdict()
        spark_values = {f: spark_row[f] for f in fields}
        # Spark hands timestamps to Python in local time: compare its UTC wall clock instead
        spark_values["order_ts"] = None
        as_oracle["order_ts"] = None
        assert spark_values == as_oracle


def test_valid_values_are_exact(spark_rows):
    record, _ = parse_line(CASES[27][0])
    assert record.product == 'Cable "XL"' and record.quantity == 3
    assert record.price == Decimal("2.50") and record.revenue == Decimal("7.50")
    assert record.order_ts == dt.datetime(2020, 2, 29, 23, 59)
    assert (record.city, record.state, record.zip) == ("Portland", "ME", "04101")
    trimmed, _ = parse_line(CASES[28][0])
    assert trimmed.order_id == "7" and trimmed.product == "AA Batteries (4-pack)"
    assert trimmed.order_ts == dt.datetime(2099, 12, 31, 0, 0)


def test_spark_timestamps_are_utc(spark):
    from pyspark.sql import functions as F

    from shared.cleaning import classify_lines

    df = spark.createDataFrame([(GOOD,)], "value string")
    row = classify_lines(df).select(F.date_format("order_ts", "yyyy-MM-dd HH:mm:ss").alias("t")).first()
    assert row["t"] == "2019-04-19 08:46:00"
