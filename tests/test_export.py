import datetime as dt
from decimal import Decimal

import pytest

from shared.catalogue import QUERIES
from shared.export import export_path, read_accounting, render, write_accounting, write_export


def test_render_sorts_by_typed_keys_and_formats_exactly():
    rows = [
        {"hour": 10, "order_lines": 1, "quantity": 2, "revenue": Decimal("23.9")},
        {"hour": 9, "order_lines": 3, "quantity": 4, "revenue": Decimal("1700")},
    ]
    assert render(QUERIES["hourly_sales"], rows) == ("hour,order_lines,quantity,revenue\n9,3,4,1700.00\n10,1,2,23.90\n")


def test_render_quotes_only_when_needed_and_formats_times():
    rows = [
        {
            "window_start": dt.datetime(2019, 4, 19, 8, 30),
            "window_end": dt.datetime(2019, 4, 19, 9, 30),
            "revenue": Decimal("0.10"),
            "order_lines": 1,
        }
    ]
    assert render(QUERIES["window_revenue"], rows).splitlines()[1] == "2019-04-19 08:30:00,2019-04-19 09:30:00,0.10,1"
    product = [{"product": 'Cable, "long"', "quantity": 1, "revenue": Decimal("1.00")}]
    assert render(QUERIES["product_sales"], product).splitlines()[1] == '"Cable, ""long""",1,1.00'


def test_money_must_not_be_a_float():
    with pytest.raises(TypeError, match="exact"):
        render(QUERIES["city_revenue_v1"], [{"city": "Austin", "revenue": 1.5}])


def test_a_key_twice_is_an_error():
    rows = [{"city": "Austin", "revenue": Decimal(1)}, {"city": "Austin", "revenue": Decimal(2)}]
    with pytest.raises(ValueError, match="more than once"):
        render(QUERIES["city_revenue_v1"], rows)


def test_missing_column_is_an_error():
    with pytest.raises(ValueError, match="lacks columns"):
        render(QUERIES["city_revenue"], [{"city": "Austin", "revenue": Decimal(1)}])


def test_dates_sort_chronologically_and_reject_timestamps():
    rows = [
        {"date": dt.date(2019, 12, 1), "revenue": Decimal(1), "order_lines": 1},
        {"date": dt.date(2019, 2, 1), "revenue": Decimal(2), "order_lines": 1},
    ]
    assert render(QUERIES["daily_revenue"], rows).splitlines()[1:] == ["2019-02-01,2.00,1", "2019-12-01,1.00,1"]
    with pytest.raises(TypeError):
        render(QUERIES["daily_revenue"], [{"date": dt.datetime(2019, 1, 1), "revenue": Decimal(1), "order_lines": 1}])


def test_write_export_and_accounting(tmp_path):
    path = write_export(tmp_path, "kappa", "city_revenue_v1", [{"city": "Boston", "revenue": Decimal("2.5")}])
    assert path == export_path(tmp_path, "kappa", "city_revenue_v1")
    assert path.read_bytes() == b"city,revenue\nBoston,2.50\n"
    write_accounting(tmp_path, "kappa", 10, 7, {"blank": 1, "header": 2})
    counts = read_accounting(tmp_path, "kappa")
    assert counts["balanced"] and counts["quarantined_lines"] == 3 and counts["quarantine"]["bad_date"] == 0
    write_accounting(tmp_path, "lambda", 11, 7, {"blank": 1, "header": 2})
    assert read_accounting(tmp_path, "lambda")["balanced"] is False
    with pytest.raises(ValueError, match="unknown quarantine"):
        write_accounting(tmp_path, "kappa", 1, 0, {"bogus": 1})
