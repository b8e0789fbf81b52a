"""The data-quality gate (shared/quality_*.py) on small hand-made pandas frames."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pandas as pd
import pytest

from shared.quality_checks import validate_order_lines
from shared.quality_expectations import QualityExpectations, expectations_from_input
from shared.quality_report import QualityError, record, require

CATALOGUE = {"USB-C Cable": Decimal("11.95"), "Monitor": Decimal("109.99")}
EARLIEST, LATEST = dt.datetime(2019, 1, 1), dt.datetime(2019, 1, 31, 23, 59)
FULL = QualityExpectations(catalogue_prices=CATALOGUE, earliest=EARLIEST, latest=LATEST)


def line(
    order_id,
    product="USB-C Cable",
    quantity=1,
    price="11.95",
    revenue=None,
    order_ts=dt.datetime(2019, 1, 5, 10, 30),
    city="Dallas",
    state="TX",
    zip_code="75001",
):
    price = None if price is None else Decimal(price)
    if revenue is None and price is not None and quantity is not None:
        revenue = quantity * price
    return {
        "order_id": order_id,
        "product": product,
        "quantity": quantity,
        "price": price,
        "revenue": None if revenue is None else Decimal(revenue),
        "order_ts": order_ts,
        "street": "917 1st St",
        "city": city,
        "state": state,
        "zip": zip_code,
    }


def frame(*lines) -> pd.DataFrame:
    result = pd.DataFrame(list(lines))
    result["order_ts"] = pd.to_datetime(result["order_ts"])  # as Spark's toPandas gives it
    return result


def clean() -> pd.DataFrame:
    return frame(
        line("1001"),
        line("1002", product="Monitor", quantity=2, price="109.99"),
        line(
            "1002", quantity=3, order_ts=dt.datetime(2019, 1, 31, 23, 59), city="Portland", state="ME", zip_code="04101"
        ),
    )


def result_of(report, check):
    [result] = [r for r in report.results if r["check"] == check]
    return result


def failed_checks(report):
    return {r["check"] for r in report.results if not r["success"]}


def test_a_clean_frame_passes():
    report = validate_order_lines(clean(), FULL)
    assert report.success and report.checked_rows == 3 and report.suite == "order_lines"
    assert len(report.results) == 15
    assert all(r["skipped"] is None and r["unexpected_count"] == 0 for r in report.results)
    assert report.summary() == "order_lines: 15/15 expectations passed on 3 rows"


@pytest.mark.parametrize(
    "bad_line, failing",
    [
        (line("9", product=None), {"product not null"}),
        (line("9", city=None), {"city not null"}),
        (line("9", state=None), {"state not null"}),
        (line("9", zip_code=None), {"zip not null"}),
        (line("9", order_ts=None), {"order_ts not null"}),
        (line("9", quantity=None, revenue="11.95"), {"quantity not null", "revenue = quantity x price"}),
        (line("9", price=None, revenue="11.95"), {"price not null", "revenue = quantity x price"}),
        (line("9", quantity=0), {"quantity >= 1"}),
        (line("9", product="Free gift", price="0.00"), {"price > 0"}),
        (line("9", state="tx"), {"state is two capital letters"}),
        (line("9", zip_code="7500A"), {"zip is five digits"}),
        (line("9", price="12.95"), {"price matches catalogue"}),
        (line("9", order_ts=dt.datetime(2019, 2, 1)), {"order_ts within input range"}),
        (line("9", order_ts=dt.datetime(2018, 12, 31, 23, 59)), {"order_ts within input range"}),
        (line("9", revenue="11.94"), {"revenue = quantity x price"}),
        (line("9", revenue=None, price="11.95", quantity=1) | {"revenue": None}, {"revenue = quantity x price"}),
    ],
)
def test_each_expectation_fails_on_a_crafted_bad_row(bad_line, failing):
    report = validate_order_lines(frame(*clean().to_dict("records"), bad_line), FULL)
    assert not report.success
    assert failed_checks(report) == failing
    for check in failing:
        result = result_of(report, check)
        assert result["unexpected_count"] == 1
        assert result["expectation"].startswith("expect_")
        assert len(result["unexpected_examples"]) == 1 and "order_id 9" in result["unexpected_examples"][0]
    first = sorted(failing)[0]
    assert f"{first} (1 row, e.g. order_id 9: " in report.summary()


def test_a_missing_order_id_is_reported_too():
    report = validate_order_lines(frame(*clean().to_dict("records"), line(None)), FULL)
    assert failed_checks(report) == {"order_id not null"}
    assert result_of(report, "order_id not null")["unexpected_examples"] == ["order_id=null"]


def test_examples_name_the_values_and_stop_at_five():
    bad = [line(str(n), state="tx") for n in range(7)]
    report = validate_order_lines(frame(*bad), FULL)
    result = result_of(report, "state is two capital letters")
    assert result["unexpected_count"] == 7
    assert result["unexpected_examples"][0] == "order_id 0: state=tx"
    assert len(result["unexpected_examples"]) == 5
    mismatch = result_of(validate_order_lines(frame(line("7", price="12.95")), FULL), "price matches catalogue")
    assert mismatch["unexpected_examples"] == ["order_id 7: price=12.95, catalogue_price=11.95"]
    assert mismatch["columns"] == ["price", "catalogue_price"]


def test_the_catalogue_check_ignores_uncatalogued_products():
    report = validate_order_lines(frame(line("1", product="Mystery Box", price="3.33")), FULL)
    assert report.success
    assert result_of(report, "price matches catalogue")["skipped"] is None


def test_money_is_compared_exactly_not_as_floats():
    # 3 x 0.10 is 0.30000000000000004 in floats; 2.5 and 2.50 are the same amount.
    catalogue = QualityExpectations(catalogue_prices={"Clip": Decimal("0.10"), "Pen": Decimal("2.5")})
    lines = frame(
        line("1", product="Clip", quantity=3, price="0.10", revenue="0.30"),
        line("2", product="Pen", price="2.50", revenue="2.5"),
    )
    assert validate_order_lines(lines, catalogue).success
    off_by_a_hundredth_cent = frame(line("3", product="Clip", price="0.10", revenue="0.1001"))
    assert failed_checks(validate_order_lines(off_by_a_hundredth_cent, catalogue)) == {"revenue = quantity x price"}


def test_the_range_and_catalogue_are_skipped_when_unknown():
    late = frame(line("1", order_ts=dt.datetime(2030, 1, 1), price="99.00"))
    report = validate_order_lines(late, QualityExpectations())
    assert report.success
    in_range = result_of(report, "order_ts within input range")
    assert in_range["skipped"] == "no order-time range known" and in_range["success"]
    assert result_of(report, "price matches catalogue")["skipped"] == "no product catalogue"
    assert report.summary().startswith("order_lines: 13/13 expectations passed on 1 rows (2 skipped: ")


def test_a_one_sided_range_and_aware_bounds_still_check():
    aware = dt.datetime(2019, 1, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 2019-01-05 22:00 UTC
    report = validate_order_lines(clean().iloc[:1], QualityExpectations(latest=aware))
    assert report.success
    too_late = frame(line("5", order_ts=dt.datetime(2019, 1, 5, 22, 1)))
    assert failed_checks(validate_order_lines(too_late, QualityExpectations(latest=aware))) == {
        "order_ts within input range"
    }


def test_python_datetimes_work_like_pandas_timestamps():
    lines = pd.DataFrame([line("1"), line("2", order_ts=dt.datetime(2020, 1, 1))])
    lines["order_ts"] = pd.Series([dt.datetime(2019, 1, 5), dt.datetime(2020, 1, 1)], dtype=object)
    assert failed_checks(validate_order_lines(lines, FULL)) == {"order_ts within input range"}


def test_an_empty_frame_is_valid():
    report = validate_order_lines(clean().iloc[:0], FULL, batch_name="batch_0")
    assert report.success and report.checked_rows == 0
    assert report.summary() == "batch_0: 15/15 expectations passed on 0 rows"


def test_a_missing_column_fails_the_checks_that_need_it():
    report = validate_order_lines(clean().drop(columns=["zip"]), FULL)
    assert failed_checks(report) == {"zip not null", "zip is five digits"}
    assert result_of(report, "zip is five digits")["error"] == "missing column(s): zip"
    assert "zip is five digits (error: missing column(s): zip)" in report.summary()


def test_the_callers_frame_is_left_alone():
    lines = clean()
    before = lines.copy()
    validate_order_lines(lines, FULL)
    pd.testing.assert_frame_equal(lines, before)


def test_no_progress_bars_or_log_noise(capfd):
    validate_order_lines(clean(), FULL)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_record_writes_valid_json_atomically(tmp_path):
    report = validate_order_lines(frame(line("1", state="tx")), FULL)
    path = record(report, tmp_path / "quality", "batch_7")
    assert path == tmp_path / "quality" / "batch_7.json"
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written == report.to_json()
    assert written["success"] is False and written["checked_rows"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["batch_7.json"]  # no temporary left


def test_require_raises_with_the_summary():
    require(validate_order_lines(clean(), FULL))
    report = validate_order_lines(frame(line("1", zip_code="1234")), FULL)
    with pytest.raises(QualityError) as raised:
        require(report)
    assert str(raised.value) == report.summary()
    assert "zip is five digits (1 row, e.g. order_id 1: zip=1234)" in str(raised.value)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_expectations_from_input_reads_catalogue_and_manifest(tmp_path):
    write(
        tmp_path / "catalogue" / "products.csv",
        "product,category,unit_cost,list_price\nUSB-C Cable,Cables,5.98,11.95\nMonitor,Screens,60.00,109.9\n",
    )
    write(
        tmp_path / "_manifest.json",
        json.dumps({"order_time_range": {"min": "2019-01-01T00:00:00+00:00", "max": "2019-01-31T23:59:00+00:00"}}),
    )
    expectations = expectations_from_input(tmp_path)
    assert expectations.catalogue_prices == {"USB-C Cable": Decimal("11.95"), "Monitor": Decimal("109.90")}
    assert (expectations.earliest, expectations.latest) == (EARLIEST, LATEST)
    assert expectations.earliest.tzinfo is None


def test_expectations_from_input_skips_what_is_absent(tmp_path):
    assert expectations_from_input(tmp_path) == QualityExpectations()
    write(tmp_path / "_manifest.json", json.dumps({"order_time_range": {"min": None, "max": None}}))
    assert expectations_from_input(tmp_path) == QualityExpectations()


@pytest.mark.parametrize(
    "catalogue, problem",
    [
        ("name,category,unit_cost,list_price\nA,B,1.00,2.00\n", "line 1"),
        ("product,category,unit_cost,list_price\nA,B,1.00,cheap\n", "line 2"),
        ("product,category,unit_cost,list_price\nA,B,1.00,2.00\nA,B,1.00,2.00\n", "listed twice"),
    ],
)
def test_a_broken_catalogue_is_an_error(tmp_path, catalogue, problem):
    write(tmp_path / "catalogue" / "products.csv", catalogue)
    with pytest.raises(ValueError, match=problem):
        expectations_from_input(tmp_path)
