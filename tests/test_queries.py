"""The catalogue's Spark functions on tiny hand-made order lines with answers worked by hand."""

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from shared import queries as Q
from shared.results import export_rows
from shared.settings import WorkloadSettings

LINE_SCHEMA = (
    "order_id string, product string, quantity int, price decimal(12,2), revenue decimal(22,2), "
    "order_ts timestamp, street string, city string, state string, zip string"
)


def _lines(spark, rows):
    data = [
        (o, p, q, Decimal(pr), q * Decimal(pr), ts, "1 A St", city, state, "00000")
        for o, p, q, pr, ts, city, state in rows
    ]
    df = spark.createDataFrame(data, LINE_SCHEMA.replace("order_ts timestamp", "order_ts string"))
    return df.withColumn("order_ts", F.to_timestamp("order_ts"))


@pytest.fixture(scope="module")
def lines(spark):
    return _lines(
        spark,
        [
            ("1", "iPhone", 1, "700.00", "2019-04-19 08:30:00", "Portland", "OR"),
            ("2", "AA Batteries (4-pack)", 3, "3.84", "2019-04-19 08:59:59", "Portland", "ME"),
            ("2", "AA Batteries (4-pack)", 3, "3.84", "2019-04-19 08:59:59", "Portland", "ME"),  # exact duplicate
            ("3", "Wired Headphones", 2, "11.99", "2019-04-20 23:00:00", "Dallas", "TX"),
        ],
    )


def test_city_revenue_keeps_the_two_portlands_apart(lines):
    rows = {
        (r["city"], r["state"]): r
        for r in export_rows(Q.result("city_revenue", lines, WorkloadSettings()), "city_revenue")
    }
    assert rows[("Portland", "OR")]["revenue"] == Decimal("700.00")
    assert rows[("Portland", "ME")]["revenue"] == Decimal("23.04") and rows[("Portland", "ME")]["order_lines"] == 2
    v1 = {
        r["city"]: r["revenue"]
        for r in export_rows(Q.result("city_revenue_v1", lines, WorkloadSettings()), "city_revenue_v1")
    }
    assert v1 == {"Portland": Decimal("723.04"), "Dallas": Decimal("23.98")}


def test_daily_and_hourly(lines):
    daily = {
        r["date"]: (r["revenue"], r["order_lines"])
        for r in export_rows(Q.result("daily_revenue", lines, WorkloadSettings()), "daily_revenue")
    }
    assert daily == {dt.date(2019, 4, 19): (Decimal("723.04"), 3), dt.date(2019, 4, 20): (Decimal("23.98"), 1)}
    hourly = {
        r["hour"]: (r["order_lines"], r["quantity"])
        for r in export_rows(Q.result("hourly_sales", lines, WorkloadSettings()), "hourly_sales")
    }
    assert hourly == {8: (3, 7), 23: (1, 2)}


def test_window_revenue_puts_a_line_in_two_epoch_aligned_windows(lines):
    rows = export_rows(Q.window_revenue(lines, WorkloadSettings()), "window_revenue")
    windows = {
        (r["window_start"].strftime("%H:%M"), r["window_end"].strftime("%H:%M")): r["order_lines"]
        for r in rows
        if r["window_start"].day == 19
    }
    # 08:30:00 is in [08:00, 09:00) and [08:30, 09:30); 08:59:59 in the same two
    assert windows == {("08:00", "09:00"): 3, ("08:30", "09:30"): 3}


def test_category_revenue_keeps_uncatalogued_products(spark, lines):
    catalogue = spark.createDataFrame(
        [
            ("iPhone", "Phones", Decimal("500.00"), Decimal("700.00")),
            ("AA Batteries (4-pack)", "Batteries", Decimal("1.00"), Decimal("3.84")),
        ],
        "product string, category string, unit_cost decimal(12,2), list_price decimal(12,2)",
    )
    rows = {
        r["category"]: (r["revenue"], r["margin"])
        for r in export_rows(Q.category_revenue(lines, catalogue), "category_revenue")
    }
    assert rows == {
        "Phones": (Decimal("700.00"), Decimal("200.00")),
        "Batteries": (Decimal("23.04"), Decimal("17.04")),
        "(uncatalogued)": (Decimal("23.98"), Decimal("0.00")),
    }


def test_fulfilment_time_bound_and_half_up_average(spark):
    lines = _lines(
        spark,
        [
            ("1", "iPhone", 1, "700", "2019-04-19 00:00:00", "Dallas", "TX"),
            ("2", "iPhone", 1, "700", "2019-04-19 00:00:00", "Dallas", "TX"),
            ("3", "iPhone", 1, "700", "2019-04-19 00:00:00", "Dallas", "TX"),
        ],
    )
    shipments = spark.createDataFrame(
        [
            ("1", "iPhone", "2019-04-22 00:00:00"),  # exactly 72 h: in
            ("2", "iPhone", "2019-04-22 00:00:01"),  # 72 h + 1 s: out
            ("3", "iPhone", "2019-04-22 00:00:00"),
            ("3", "iPhone", "2019-04-18 23:59:59"),  # before the order: out
        ],
        "order_id string, product string, ship_time string",
    ).withColumn("ship_ts", F.to_timestamp("ship_time"))
    rows = export_rows(Q.fulfilment(lines, shipments, WorkloadSettings()), "fulfilment")
    assert rows == [{"ship_date": dt.date(2019, 4, 22), "shipped_lines": 2, "avg_hours_to_ship": Decimal("72.00")}]


@pytest.mark.parametrize(
    "seconds,count,expected",
    [
        (4050, 1, "1.13"),  # 1.125 h rounds half up (half-even would give 1.12)
        (1206, 1, "0.34"),  # 0.335 h
        (3599, 3, "0.33"),
        (0, 2, "0.00"),
    ],
)
def test_average_hours_half_up(spark, seconds, count, expected):
    df = spark.createDataFrame([(seconds, count)], "s long, n long")
    assert df.select(Q.average_hours_half_up("s", "n").alias("a")).first()["a"] == Decimal(expected)
