"""The oracle against hand-made inputs whose answers are worked out by hand below.

Expected rows and export texts are literals: nothing here is computed with the oracle's
own helpers, so a bug in them cannot hide in the expectation.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from experiments.reference.oracle import classify_line, compute, read_raw_lines, run_oracle
from shared.settings import WorkloadSettings

HEADER = "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address"
DALLAS = '"917 1st St, Dallas, TX 75001"'
ALL_REASONS_ZERO = {
    "not_utf8": 0,
    "too_long": 0,
    "blank": 0,
    "header": 0,
    "field_count": 0,
    "missing_field": 0,
    "bad_quantity": 0,
    "bad_price": 0,
    "bad_date": 0,
    "bad_address": 0,
}


def write(path: Path, text: str) -> Path:
    """Write text byte for byte (no newline translation), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def sales_dir(tmp_path: Path, *lines: str, name: str = "sales.csv") -> Path:
    """An input directory with one LF sales file: the header, then the lines."""
    write(tmp_path / "in" / name, "".join(f"{line}\n" for line in (HEADER, *lines)))
    return tmp_path / "in"


def line(order_id="1", product="Widget", quantity="1", price="1.00", date="01/01/20 10:00", address=DALLAS) -> str:
    return ",".join([order_id, product, quantity, price, date, address])


# ---------------------------------------------------------------------------------------
# Raw lines
# ---------------------------------------------------------------------------------------


def test_raw_lines_end_at_lf_crlf_and_cr_only(tmp_path):
    write(tmp_path / "b.csv", "b1\r\nb2\rb3\n\nb5")  # no final line ending
    write(tmp_path / "a.csv", "a1\na2\x0cstill a2\u2028still a2\n")  # a final ending adds no line
    write(tmp_path / "c.csv", "")
    write(tmp_path / "notes.txt", "not sales\n")
    write(tmp_path / "_manifest.csv", "metadata\n")
    write(tmp_path / "sub" / "deep.csv", "not top-level\n")

    assert list(read_raw_lines(tmp_path)) == [
        ("a.csv", "a1"),
        ("a.csv", "a2\x0cstill a2\u2028still a2"),
        ("b.csv", "b1"),
        ("b.csv", "b2"),
        ("b.csv", "b3"),
        ("b.csv", ""),
        ("b.csv", "b5"),
    ]


def test_missing_input_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        run_oracle(missing, tmp_path / "work")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        compute(missing)


def test_input_without_top_level_csv_is_a_clear_error(tmp_path):
    write(tmp_path / "in" / "readme.txt", "hello\n")
    write(tmp_path / "in" / "catalogue" / "products.csv", "product,category,unit_cost,list_price\n")
    with pytest.raises(ValueError, match="no top-level .csv"):
        run_oracle(tmp_path / "in", tmp_path / "work")
    assert not (tmp_path / "work" / "results").exists()


# ---------------------------------------------------------------------------------------
# Parsing one line
# ---------------------------------------------------------------------------------------


def test_a_valid_line_is_typed_exactly():
    record, reason = classify_line(
        ' 176558 , USB-C Charging Cable ,2, 11.95 ,04/19/19 08:46,"917 1st St, Dallas, TX 75001"'
    )
    assert reason is None
    assert record == {
        "order_id": "176558",
        "product": "USB-C Charging Cable",
        "quantity": 2,
        "price": Decimal("11.95"),
        "revenue": Decimal("23.90"),
        "order_ts": dt.datetime(2019, 4, 19, 8, 46),
        "street": "917 1st St",
        "city": "Dallas",
        "state": "TX",
        "zip": "75001",
    }
    assert type(record["quantity"]) is int
    assert type(record["price"]) is Decimal and type(record["revenue"]) is Decimal
    assert record["order_ts"].tzinfo is None


@pytest.mark.parametrize(
    "text, expected",
    [
        (line(product='"Cable, USB ""C"""'), 'Cable, USB "C"'),  # RFC 4180 quoting
        (line(price="5"), Decimal("5.00")),
        (line(price="1234567890.99"), Decimal("1234567890.99")),
        (line(quantity="007"), 7),
        (line(quantity="999999999"), 999999999),
        (line(date="02/29/20 23:59"), dt.datetime(2020, 2, 29, 23, 59)),
        (line(date="12/31/99 00:00"), dt.datetime(2099, 12, 31, 0, 0)),
    ],
)
def test_valid_edge_values(text, expected):
    record, reason = classify_line(text)
    assert reason is None
    assert expected in record.values()


def test_price_and_revenue_carry_two_places():
    record, _ = classify_line(line(quantity="3", price="5"))
    assert (str(record["price"]), str(record["revenue"])) == ("5.00", "15.00")
    record, _ = classify_line(line(quantity="2", price="0.5"))
    assert (str(record["price"]), str(record["revenue"])) == ("0.50", "1.00")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "blank"),
        (",,,,,", "blank"),
        ("  , ,,   ,, ", "blank"),
        ("   ", "blank"),
        (",,", "blank"),  # every field empty, whatever the count
        (HEADER, "header"),
        (" Order ID , Product,Quantity Ordered,Price Each,Order Date,Purchase Address ", "header"),
        ("Order ID,Product,Quantity Ordered,Price Each,Order Date", "field_count"),
        (line() + ",extra", "field_count"),
        (",Widget,,,,", "missing_field"),
        ("1,Widget,2,11.95,04/19/19 08:46,917 1st St, Dallas, TX 75001", "field_count"),  # unquoted
        ('1,"Widget,2,11.95,04/19/19 08:46,x', "field_count"),  # unterminated quote
        (line(order_id=""), "missing_field"),
        (line(product="   "), "missing_field"),
        (line(address=""), "missing_field"),
        (line(quantity="0"), "bad_quantity"),
        (line(quantity="000"), "bad_quantity"),
        (line(quantity="-1"), "bad_quantity"),
        (line(quantity="1.5"), "bad_quantity"),
        (line(quantity="two"), "bad_quantity"),
        (line(quantity="1234567890"), "bad_quantity"),  # ten digits
        (line(quantity="\u0661"), "bad_quantity"),  # ARABIC-INDIC DIGIT ONE is not a digit here
        (line(quantity="x", price="y", date="z", address="w"), "bad_quantity"),  # first reason wins
        (line(price="0"), "bad_price"),
        (line(price="0.00"), "bad_price"),
        (line(price="-3.00"), "bad_price"),
        (line(price="1.234"), "bad_price"),
        (line(price="1."), "bad_price"),
        (line(price=".50"), "bad_price"),
        (line(price="12345678901"), "bad_price"),  # eleven integer digits
        (line(price="1e3"), "bad_price"),
        (line(price="$5.00"), "bad_price"),
        (line(price="y", date="z", address="w"), "bad_price"),
        (line(date="13/01/19 10:00"), "bad_date"),
        (line(date="02/30/19 10:00"), "bad_date"),
        (line(date="02/29/19 10:00"), "bad_date"),  # 2019 is not a leap year
        (line(date="04/19/19 24:00"), "bad_date"),
        (line(date="04/19/19 08:60"), "bad_date"),
        (line(date="4/19/19 08:46"), "bad_date"),
        (line(date="04/19/2019 08:46"), "bad_date"),
        (line(date="2019-04-19 08:46"), "bad_date"),
        (line(date="04/19/19 08:46:00"), "bad_date"),
        (line(date="04/19/19  08:46"), "bad_date"),
        (line(date="z", address="w"), "bad_date"),
        (line(address='"917 1st St, Dallas"'), "bad_address"),
        (line(address='"917 1st St, Dallas, TX 75001, USA"'), "bad_address"),
        (line(address='"917 1st St,Dallas, TX 75001"'), "bad_address"),
        (line(address='"917 1st St, Dallas, tx 75001"'), "bad_address"),
        (line(address='"917 1st St, Dallas, TX 7500"'), "bad_address"),
        (line(address='"917 1st St, Dallas, TX  75001"'), "bad_address"),
        (line(address='"917 1st St, Dallas, TEX 75001"'), "bad_address"),
        (line(address='", Dallas, TX 75001"'), "bad_address"),  # empty street
        (line(address='"917 1st St, , TX 75001"'), "bad_address"),  # empty city
    ],
)
def test_quarantine_reason(text, reason):
    assert classify_line(text) == (None, reason)


def test_every_raw_line_is_counted_once(tmp_path):
    # a.csv: LF, repeated header, both kinds of blank line, one line per other reason.
    write(
        tmp_path / "in" / "a.csv",
        "\n".join(
            [
                HEADER,
                line(order_id="1"),
                ",,,,,",
                "",
                HEADER,
                line(order_id="2"),
                line(order_id="2"),  # an exact duplicate is a valid line
                "1,2,3",
                line(product=""),
                line(quantity="0"),
                line(price="0.001"),
                line(date="02/30/20 10:00"),
                line(address='"Dallas, TX 75001"'),
            ]
        )
        + "\n",
    )
    # b.csv: CRLF with a lone CR inside and no final line ending.
    write(tmp_path / "in" / "b.csv", f"{HEADER}\r\n{line(order_id='3')}\r,,,,,\r\n{line(order_id='4')}")
    # c.csv: Windows-1252 (an accented line is not UTF-8; the rest is read) and a runaway line
    (tmp_path / "in" / "c.csv").write_bytes(
        "\n".join(
            [
                line(order_id="5"),
                line(address='"1 Rue, San José, CA 95113"'),
                "x" * 5000,
                line(order_id="6"),
            ]
        ).encode("cp1252")
    )

    result = compute(tmp_path / "in")

    assert result.raw_lines == 21
    assert result.valid_lines == 7
    assert result.quarantine == {
        "not_utf8": 1,
        "too_long": 1,
        "blank": 3,
        "header": 3,
        "field_count": 1,
        "missing_field": 1,
        "bad_quantity": 1,
        "bad_price": 1,
        "bad_date": 1,
        "bad_address": 1,
    }
    assert result.raw_lines == result.valid_lines + sum(result.quarantine.values())


def test_empty_input_file_gives_empty_results(tmp_path):
    write(tmp_path / "in" / "empty.csv", HEADER + "\n")
    result = compute(tmp_path / "in")
    assert (result.raw_lines, result.valid_lines) == (1, 0)
    assert result.order_time_range is None
    assert result.results["city_revenue"] == [] and result.results["window_revenue"] == []


# ---------------------------------------------------------------------------------------
# The queries on one small hand-worked case
# ---------------------------------------------------------------------------------------
# Valid lines (revenue = quantity x price):
#   L1 order 1 Widget      2 x 10.50 = 21.00  2020-01-01 10:00  Portland OR
#   L2 order 2 Gadget      1 x  3.25 =  3.25  2020-01-01 10:30  Portland ME
#   L3 = L2 (exact duplicate)
#   L4 order 3 Widget      3 x 10.50 = 31.50  2020-01-02 23:59  Dallas TX
#   L5 order 4 Cable, USB  1 x  5.00 =  5.00  2020-01-02 00:00  Dallas TX   (b.csv, CRLF)
# Quarantined: 2 headers, 1 blank, 1 bad_quantity.  Raw lines 9 = 5 valid + 4.
# Catalogue: Widget Tools cost 7.25 -> margin 5 x 3.25 = 16.25;
#            Cable, USB Accessories cost 4.10 -> margin 0.90; Gadget uncatalogued.
# Shipments: order 1 Widget at +72 h exactly (in); order 2 Gadget at +1.5 h matches L2
#            and L3 (2 pairs); order 3 Widget at +72 h 1 s and at -1 min (both out);
#            order 9 and order 1 Gadget match no order line.

SALES_A = (
    "\n".join(
        [
            HEADER,
            '1,Widget,2,10.50,01/01/20 10:00,"1 A St, Portland, OR 97035"',
            '2,Gadget,1,3.25,01/01/20 10:30,"2 B St, Portland, ME 04101"',
            '2,Gadget,1,3.25,01/01/20 10:30,"2 B St, Portland, ME 04101"',
            '3,Widget,3,10.50,01/02/20 23:59,"3 C St, Dallas, TX 75001"',
        ]
    )
    + "\n"
)
SALES_B = (
    "\r\n".join(
        [
            HEADER,
            '4,"Cable, USB",1,5.00,01/02/20 00:00,"4 D St, Dallas, TX 75001"',
            ",,,,,",
            '5,Widget,0,10.50,01/02/20 00:00,"4 D St, Dallas, TX 75001"',
        ]
    )
    + "\r\n"
)
CATALOGUE = 'product,category,unit_cost,list_price\nWidget,Tools,7.25,10.50\n"Cable, USB",Accessories,4.10,5.00\n'
SHIPMENTS = (
    "order_id,product,ship_time,carrier\n"
    "1,Widget,2020-01-04 10:00:00,UPS\n"
    "2,Gadget,2020-01-01 12:00:00,FedEx\n"
    "3,Widget,2020-01-05 23:59:01,UPS\n"
    "3,Widget,2020-01-02 23:58:00,UPS\n"
    "9,Widget,2020-01-01 12:00:00,UPS\n"
    "1,Gadget,2020-01-01 12:00:00,UPS\n"
)


@pytest.fixture
def small_input(tmp_path) -> Path:
    root = tmp_path / "in"
    write(root / "a.csv", SALES_A)
    write(root / "b.csv", SALES_B)
    write(root / "catalogue" / "products.csv", CATALOGUE)
    write(root / "shipments" / "part-0.csv", SHIPMENTS)
    write(root / "_manifest.json", "{}\n")
    return root


def D(text: str) -> Decimal:
    return Decimal(text)


def test_small_case_rows(small_input):
    result = compute(small_input)

    assert (result.raw_lines, result.valid_lines) == (9, 5)
    assert result.quarantine == {**ALL_REASONS_ZERO, "header": 2, "blank": 1, "bad_quantity": 1}
    assert result.not_applicable == {}
    assert result.order_time_range == (dt.datetime(2020, 1, 1, 10, 0), dt.datetime(2020, 1, 2, 23, 59))
    assert result.results == {
        "city_revenue": [
            {"city": "Dallas", "state": "TX", "revenue": D("36.50"), "order_lines": 2},
            {"city": "Portland", "state": "ME", "revenue": D("6.50"), "order_lines": 2},
            {"city": "Portland", "state": "OR", "revenue": D("21.00"), "order_lines": 1},
        ],
        "daily_revenue": [
            {"date": dt.date(2020, 1, 1), "revenue": D("27.50"), "order_lines": 3},
            {"date": dt.date(2020, 1, 2), "revenue": D("36.50"), "order_lines": 2},
        ],
        "product_sales": [
            {"product": "Cable, USB", "quantity": 1, "revenue": D("5.00")},
            {"product": "Gadget", "quantity": 2, "revenue": D("6.50")},
            {"product": "Widget", "quantity": 5, "revenue": D("52.50")},
        ],
        "hourly_sales": [
            {"hour": 0, "order_lines": 1, "quantity": 1, "revenue": D("5.00")},
            {"hour": 10, "order_lines": 3, "quantity": 4, "revenue": D("27.50")},
            {"hour": 23, "order_lines": 1, "quantity": 3, "revenue": D("31.50")},
        ],
        "window_revenue": [
            {
                "window_start": dt.datetime(2020, 1, 1, 9, 30),
                "window_end": dt.datetime(2020, 1, 1, 10, 30),
                "revenue": D("21.00"),
                "order_lines": 1,
            },
            {
                "window_start": dt.datetime(2020, 1, 1, 10, 0),
                "window_end": dt.datetime(2020, 1, 1, 11, 0),
                "revenue": D("27.50"),
                "order_lines": 3,
            },
            {
                "window_start": dt.datetime(2020, 1, 1, 10, 30),
                "window_end": dt.datetime(2020, 1, 1, 11, 30),
                "revenue": D("6.50"),
                "order_lines": 2,
            },
            {
                "window_start": dt.datetime(2020, 1, 1, 23, 30),
                "window_end": dt.datetime(2020, 1, 2, 0, 30),
                "revenue": D("5.00"),
                "order_lines": 1,
            },
            {
                "window_start": dt.datetime(2020, 1, 2, 0, 0),
                "window_end": dt.datetime(2020, 1, 2, 1, 0),
                "revenue": D("5.00"),
                "order_lines": 1,
            },
            {
                "window_start": dt.datetime(2020, 1, 2, 23, 0),
                "window_end": dt.datetime(2020, 1, 3, 0, 0),
                "revenue": D("31.50"),
                "order_lines": 1,
            },
            {
                "window_start": dt.datetime(2020, 1, 2, 23, 30),
                "window_end": dt.datetime(2020, 1, 3, 0, 30),
                "revenue": D("31.50"),
                "order_lines": 1,
            },
        ],
        "category_revenue": [
            {"category": "(uncatalogued)", "revenue": D("6.50"), "margin": D("0.00")},
            {"category": "Accessories", "revenue": D("5.00"), "margin": D("0.90")},
            {"category": "Tools", "revenue": D("52.50"), "margin": D("16.25")},
        ],
        "fulfilment": [
            {"ship_date": dt.date(2020, 1, 1), "shipped_lines": 2, "avg_hours_to_ship": D("1.50")},
            {"ship_date": dt.date(2020, 1, 4), "shipped_lines": 1, "avg_hours_to_ship": D("72.00")},
        ],
        "city_revenue_v1": [
            {"city": "Dallas", "revenue": D("36.50")},
            {"city": "Portland", "revenue": D("27.50")},
        ],
    }


def test_money_is_never_a_float(small_input):
    result = compute(small_input)
    money = {"revenue", "margin", "avg_hours_to_ship"}
    checked = 0
    for rows in result.results.values():
        for row in rows:
            for column, value in row.items():
                assert not isinstance(value, float), (column, value)
                if column in money:
                    assert type(value) is Decimal
                    checked += 1
    assert checked == 3 + 2 + 3 + 3 + 7 + 6 + 2 + 2


def test_small_case_export_files_are_byte_exact(small_input, tmp_path):
    work = tmp_path / "work"
    run_oracle(small_input, work)
    out = work / "results" / "oracle"

    expected = {
        "city_revenue.csv": "city,state,revenue,order_lines\n"
        "Dallas,TX,36.50,2\n"
        "Portland,ME,6.50,2\n"
        "Portland,OR,21.00,1\n",
        "daily_revenue.csv": "date,revenue,order_lines\n2020-01-01,27.50,3\n2020-01-02,36.50,2\n",
        "product_sales.csv": 'product,quantity,revenue\n"Cable, USB",1,5.00\nGadget,2,6.50\nWidget,5,52.50\n',
        "hourly_sales.csv": "hour,order_lines,quantity,revenue\n0,1,1,5.00\n10,3,4,27.50\n23,1,3,31.50\n",
        "window_revenue.csv": "window_start,window_end,revenue,order_lines\n"
        "2020-01-01 09:30:00,2020-01-01 10:30:00,21.00,1\n"
        "2020-01-01 10:00:00,2020-01-01 11:00:00,27.50,3\n"
        "2020-01-01 10:30:00,2020-01-01 11:30:00,6.50,2\n"
        "2020-01-01 23:30:00,2020-01-02 00:30:00,5.00,1\n"
        "2020-01-02 00:00:00,2020-01-02 01:00:00,5.00,1\n"
        "2020-01-02 23:00:00,2020-01-03 00:00:00,31.50,1\n"
        "2020-01-02 23:30:00,2020-01-03 00:30:00,31.50,1\n",
        "category_revenue.csv": "category,revenue,margin\n"
        "(uncatalogued),6.50,0.00\n"
        "Accessories,5.00,0.90\n"
        "Tools,52.50,16.25\n",
        "fulfilment.csv": "ship_date,shipped_lines,avg_hours_to_ship\n2020-01-01,2,1.50\n2020-01-04,1,72.00\n",
        "city_revenue_v1.csv": "city,revenue\nDallas,36.50\nPortland,27.50\n",
    }
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "_accounting.json"])
    for name, text in expected.items():
        assert (out / name).read_bytes() == text.encode("utf-8"), name
    assert json.loads((out / "_accounting.json").read_text()) == {
        "raw_lines": 9,
        "valid_lines": 5,
        "quarantined_lines": 4,
        "balanced": True,
        "quarantine": {
            "not_utf8": 0,
            "too_long": 0,
            "blank": 1,
            "header": 2,
            "field_count": 0,
            "missing_field": 0,
            "bad_quantity": 1,
            "bad_price": 0,
            "bad_date": 0,
            "bad_address": 0,
        },
    }


# ---------------------------------------------------------------------------------------
# Focused query cases
# ---------------------------------------------------------------------------------------


def test_portland_or_and_me_apart_in_city_revenue_merged_in_v1(tmp_path):
    root = sales_dir(
        tmp_path,
        line(price="1.10", address='"1 A St, Portland, OR 97035"'),
        line(price="2.20", address='"2 B St, Portland, ME 04101"'),
    )
    result = compute(root)
    assert result.results["city_revenue"] == [
        {"city": "Portland", "state": "ME", "revenue": D("2.20"), "order_lines": 1},
        {"city": "Portland", "state": "OR", "revenue": D("1.10"), "order_lines": 1},
    ]
    assert result.results["city_revenue_v1"] == [{"city": "Portland", "revenue": D("3.30")}]


def test_exact_duplicates_count_twice(tmp_path):
    duplicate = line(quantity="3", price="0.10")
    result = compute(sales_dir(tmp_path, duplicate, duplicate))
    assert result.valid_lines == 2
    assert result.results["product_sales"] == [{"product": "Widget", "quantity": 6, "revenue": D("0.60")}]
    assert result.results["daily_revenue"] == [{"date": dt.date(2020, 1, 1), "revenue": D("0.60"), "order_lines": 2}]


def test_window_boundaries(tmp_path):
    root = sales_dir(
        tmp_path,
        line(price="1.00", date="03/01/20 10:30"),  # exactly on a boundary
        line(price="2.00", date="03/01/20 10:29"),
    )  # one minute before it
    assert compute(root).results["window_revenue"] == [
        {
            "window_start": dt.datetime(2020, 3, 1, 9, 30),
            "window_end": dt.datetime(2020, 3, 1, 10, 30),
            "revenue": D("2.00"),
            "order_lines": 1,
        },
        {
            "window_start": dt.datetime(2020, 3, 1, 10, 0),
            "window_end": dt.datetime(2020, 3, 1, 11, 0),
            "revenue": D("3.00"),
            "order_lines": 2,
        },
        {
            "window_start": dt.datetime(2020, 3, 1, 10, 30),
            "window_end": dt.datetime(2020, 3, 1, 11, 30),
            "revenue": D("1.00"),
            "order_lines": 1,
        },
    ]


def test_window_settings_are_honoured(tmp_path):
    settings = WorkloadSettings(window_seconds=3600, slide_seconds=1200)
    root = sales_dir(tmp_path, line(price="1.00", date="03/01/20 10:00"))
    assert compute(root, settings).results["window_revenue"] == [
        {
            "window_start": dt.datetime(2020, 3, 1, 9, 20),
            "window_end": dt.datetime(2020, 3, 1, 10, 20),
            "revenue": D("1.00"),
            "order_lines": 1,
        },
        {
            "window_start": dt.datetime(2020, 3, 1, 9, 40),
            "window_end": dt.datetime(2020, 3, 1, 10, 40),
            "revenue": D("1.00"),
            "order_lines": 1,
        },
        {
            "window_start": dt.datetime(2020, 3, 1, 10, 0),
            "window_end": dt.datetime(2020, 3, 1, 11, 0),
            "revenue": D("1.00"),
            "order_lines": 1,
        },
    ]


def test_invalid_settings_are_refused(tmp_path):
    root = sales_dir(tmp_path, line())
    with pytest.raises(ValueError, match="multiple of the slide"):
        compute(root, WorkloadSettings(window_seconds=3600, slide_seconds=1700))


def test_category_margin_and_uncatalogued(tmp_path):
    root = sales_dir(
        tmp_path,
        line(product="Widget", quantity="4", price="2.50"),  # margin 4 x (2.50 - 1.75) = 3.00
        line(product="Widget", quantity="1", price="1.50"),  # sold below cost: -0.25
        line(product="Mystery", quantity="2", price="9.99"),
    )
    write(
        root / "catalogue" / "products.csv",
        "product,category,unit_cost,list_price\nWidget,Tools,1.75,2.50\nUnsold,Toys,1.00,2.00\n",
    )
    assert compute(root).results["category_revenue"] == [
        {"category": "(uncatalogued)", "revenue": D("19.98"), "margin": D("0.00")},
        {"category": "Tools", "revenue": D("11.50"), "margin": D("2.75")},
    ]


def fulfilment_input(tmp_path, sales_lines, shipment_lines) -> Path:
    root = sales_dir(tmp_path, *sales_lines)
    write(
        root / "shipments" / "s.csv", "order_id,product,ship_time,carrier\n" + "".join(f"{s}\n" for s in shipment_lines)
    )
    return root


def test_fulfilment_time_bound_is_inclusive(tmp_path):
    root = fulfilment_input(
        tmp_path,
        [line(order_id="1", date="01/01/20 10:00")],
        [
            "1,Widget,2020-01-01 09:59:59,UPS",  # before the order: out
            "1,Widget,2020-01-01 10:00:00,UPS",  # at the order time: in, 0 h
            "1,Widget,2020-01-04 10:00:00,UPS",  # exactly 72 h: in
            "1,Widget,2020-01-04 10:00:01,UPS",
        ],
    )  # 72 h + 1 s: out
    assert compute(root).results["fulfilment"] == [
        {"ship_date": dt.date(2020, 1, 1), "shipped_lines": 1, "avg_hours_to_ship": D("0.00")},
        {"ship_date": dt.date(2020, 1, 4), "shipped_lines": 1, "avg_hours_to_ship": D("72.00")},
    ]


def test_fulfilment_ship_within_setting(tmp_path):
    root = fulfilment_input(
        tmp_path,
        [line(order_id="1", date="01/01/20 10:00")],
        ["1,Widget,2020-01-01 11:00:00,UPS", "1,Widget,2020-01-01 11:00:01,UPS"],
    )
    assert compute(root, WorkloadSettings(ship_within_seconds=3600)).results["fulfilment"] == [
        {"ship_date": dt.date(2020, 1, 1), "shipped_lines": 1, "avg_hours_to_ship": D("1.00")},
    ]


def test_fulfilment_average_rounds_half_up(tmp_path):
    root = fulfilment_input(
        tmp_path,
        [
            line(order_id="1", date="01/01/20 10:00"),
            line(order_id="2", date="01/01/20 10:00"),
            line(order_id="3", date="01/02/20 10:00"),
            line(order_id="4", date="01/02/20 10:00"),
            line(order_id="5", date="01/02/20 10:00"),
            line(order_id="6", date="01/03/20 10:00"),
            line(order_id="7", date="01/03/20 10:00"),
            line(order_id="8", date="01/03/20 10:00"),
        ],
        [  # 2020-01-01: 3600 s + 4500 s = 8100 s over 2 pairs = 1.125 h exactly -> 1.13 (half-even: 1.12)
            "1,Widget,2020-01-01 11:00:00,UPS",
            "2,Widget,2020-01-01 11:15:00,UPS",
            # 2020-01-02: 3 x 1206 s = 3618 s over 3 pairs = 0.335 h exactly -> 0.34
            "3,Widget,2020-01-02 10:20:06,UPS",
            "4,Widget,2020-01-02 10:20:06,UPS",
            "5,Widget,2020-01-02 10:20:06,UPS",
            # 2020-01-03: 1206 + 1206 + 1205 = 3617 s -> 0.334907... h -> 0.33
            "6,Widget,2020-01-03 10:20:06,UPS",
            "7,Widget,2020-01-03 10:20:06,UPS",
            "8,Widget,2020-01-03 10:20:05,UPS",
        ],
    )
    assert compute(root).results["fulfilment"] == [
        {"ship_date": dt.date(2020, 1, 1), "shipped_lines": 2, "avg_hours_to_ship": D("1.13")},
        {"ship_date": dt.date(2020, 1, 2), "shipped_lines": 3, "avg_hours_to_ship": D("0.34")},
        {"ship_date": dt.date(2020, 1, 3), "shipped_lines": 3, "avg_hours_to_ship": D("0.33")},
    ]


def test_fulfilment_ship_date_is_the_day_of_shipping(tmp_path):
    root = fulfilment_input(tmp_path, [line(order_id="1", date="01/01/20 23:30")], ["1,Widget,2020-01-02 00:15:00,DHL"])
    assert compute(root).results["fulfilment"] == [
        {"ship_date": dt.date(2020, 1, 2), "shipped_lines": 1, "avg_hours_to_ship": D("0.75")},
    ]


# ---------------------------------------------------------------------------------------
# Optional inputs
# ---------------------------------------------------------------------------------------


def test_joined_queries_not_applicable_without_catalogue_or_shipments(tmp_path):
    root = sales_dir(tmp_path, line())
    work = tmp_path / "work"
    result = run_oracle(root, work)

    assert set(result.not_applicable) == {"category_revenue", "fulfilment"}
    assert "catalogue" in result.not_applicable["category_revenue"]
    assert "shipments" in result.not_applicable["fulfilment"]
    assert set(result.results) == {
        "city_revenue",
        "daily_revenue",
        "product_sales",
        "hourly_sales",
        "window_revenue",
        "city_revenue_v1",
    }
    written = sorted(p.name for p in (work / "results" / "oracle").iterdir())
    assert written == [
        "_accounting.json",
        "city_revenue.csv",
        "city_revenue_v1.csv",
        "daily_revenue.csv",
        "hourly_sales.csv",
        "product_sales.csv",
        "window_revenue.csv",
    ]


def test_empty_shipments_folder_is_not_applicable(tmp_path):
    root = sales_dir(tmp_path, line())
    (root / "shipments").mkdir()
    assert "fulfilment" in compute(root).not_applicable


def test_stale_export_of_a_now_not_applicable_query_is_removed(small_input, tmp_path):
    work = tmp_path / "work"
    run_oracle(small_input, work)
    assert (work / "results" / "oracle" / "category_revenue.csv").exists()
    (small_input / "catalogue" / "products.csv").unlink()
    run_oracle(small_input, work)
    assert not (work / "results" / "oracle" / "category_revenue.csv").exists()
    assert (work / "results" / "oracle" / "fulfilment.csv").exists()


@pytest.mark.parametrize(
    "catalogue, where",
    [
        ("product,category,unit_cost,list_price\nWidget,Tools,1.00,2.00\nGadget,Toys,cheap,2.00\n", "line 3"),
        ("product,category,unit_cost,list_price\nWidget,Tools,1.00\n", "line 2"),
        ("product,category,unit_cost,list_price\nWidget,Tools,1.00,2.00\nWidget,Toys,1.00,2.00\n", "line 3"),
        ("name,category,unit_cost,list_price\nWidget,Tools,1.00,2.00\n", "line 1"),
    ],
)
def test_malformed_catalogue_is_an_error_naming_file_and_line(tmp_path, catalogue, where):
    root = sales_dir(tmp_path, line())
    write(root / "catalogue" / "products.csv", catalogue)
    with pytest.raises(ValueError, match=rf"products\.csv, {where}\b"):
        compute(root)


@pytest.mark.parametrize(
    "shipments, where",
    [
        (
            "order_id,product,ship_time,carrier\n1,Widget,2020-01-01 10:00:00,UPS\n1,Widget,01/01/20 10:00,UPS\n",
            "line 3",
        ),
        ("order_id,product,ship_time,carrier\n1,Widget,2020-02-30 10:00:00,UPS\n", "line 2"),
        ("order_id,product,ship_time,carrier\n1,Widget,2020-01-01 10:00:00\n", "line 2"),
    ],
)
def test_malformed_shipments_is_an_error_naming_file_and_line(tmp_path, shipments, where):
    root = sales_dir(tmp_path, line())
    write(root / "shipments" / "part-7.csv", shipments)
    with pytest.raises(ValueError, match=rf"part-7\.csv, {where}\b"):
        compute(root)


# ---------------------------------------------------------------------------------------
# Plain Python values out of the pandas aggregation, and exactness
# ---------------------------------------------------------------------------------------


def test_row_values_are_plain_python_types(small_input):
    result = compute(small_input)
    expected_types = {
        "city": str,
        "state": str,
        "product": str,
        "category": str,
        "revenue": Decimal,
        "margin": Decimal,
        "avg_hours_to_ship": Decimal,
        "order_lines": int,
        "quantity": int,
        "hour": int,
        "shipped_lines": int,
        "date": dt.date,
        "ship_date": dt.date,
        "window_start": dt.datetime,
        "window_end": dt.datetime,
    }
    seen = set()
    for query, rows in result.results.items():
        assert rows, query
        for row in rows:
            for column, value in row.items():
                # `type(...) is`: numpy.int64, pandas.Timestamp (a datetime subclass) must not pass
                assert type(value) is expected_types[column], (query, column, type(value))
                if type(value) is dt.datetime:
                    assert value.tzinfo is None
                seen.add(column)
    assert seen == set(expected_types)
    assert [type(t) for t in result.order_time_range] == [dt.datetime, dt.datetime]
    assert all(type(n) is int for n in (result.raw_lines, result.valid_lines, *result.quarantine.values()))


def test_money_sums_stay_exact_beyond_float_precision(tmp_path):
    # 999999999 x 1234567890.99 = 1234567889755432109.01 per line; float keeps ~16 digits.
    big = line(quantity="999999999", price="1234567890.99")
    result = compute(sales_dir(tmp_path, big, big, line(quantity="1", price="0.01")))
    assert result.results["product_sales"] == [
        {"product": "Widget", "quantity": 1999999999, "revenue": D("2469135779510864218.03")}
    ]
    assert result.results["city_revenue_v1"] == [{"city": "Dallas", "revenue": D("2469135779510864218.03")}]


def test_ten_cents_ten_times_is_one_euro(tmp_path):
    result = compute(sales_dir(tmp_path, *[line(price="0.10")] * 10))
    assert result.results["hourly_sales"] == [{"hour": 10, "order_lines": 10, "quantity": 10, "revenue": D("1.00")}]


def test_every_pair_of_duplicate_lines_and_shipments_counts(tmp_path):
    root = fulfilment_input(
        tmp_path,
        [line(order_id="1"), line(order_id="1")],  # 10:00
        ["1,Widget,2020-01-01 11:00:00,UPS", "1,Widget,2020-01-01 12:00:00,DHL"],
    )
    assert compute(root).results["fulfilment"] == [
        # 4 pairs: 2 x 1 h + 2 x 2 h = 6 h -> 1.50
        {"ship_date": dt.date(2020, 1, 1), "shipped_lines": 4, "avg_hours_to_ship": D("1.50")},
    ]


def test_ship_times_of_any_year_are_accepted_and_simply_match_nothing(tmp_path):
    root = fulfilment_input(
        tmp_path,
        [line(order_id="1", date="01/01/20 10:00")],
        ["1,Widget,0001-01-01 00:00:00,UPS", "1,Widget,9999-12-31 23:59:59,UPS", "1,Widget,2020-01-01 10:30:00,UPS"],
    )
    assert compute(root).results["fulfilment"] == [
        {"ship_date": dt.date(2020, 1, 1), "shipped_lines": 1, "avg_hours_to_ship": D("0.50")},
    ]


def test_catalogue_that_lists_no_sold_product(tmp_path):
    root = sales_dir(tmp_path, line(product="Widget", quantity="2", price="1.25"))
    write(root / "catalogue" / "products.csv", "product,category,unit_cost,list_price\nGadget,Toys,1.00,2.00\n")
    assert compute(root).results["category_revenue"] == [
        {"category": "(uncatalogued)", "revenue": D("2.50"), "margin": D("0.00")}
    ]
    write(root / "catalogue" / "products.csv", "product,category,unit_cost,list_price\n")  # header only
    assert compute(root).results["category_revenue"] == [
        {"category": "(uncatalogued)", "revenue": D("2.50"), "margin": D("0.00")}
    ]


def test_catalogue_that_lists_every_sold_product(tmp_path):
    root = sales_dir(tmp_path, line(product="Widget", quantity="2", price="1.25"))
    write(root / "catalogue" / "products.csv", "product,category,unit_cost,list_price\nWidget,Tools,1,2.00\n")
    assert compute(root).results["category_revenue"] == [
        {"category": "Tools", "revenue": D("2.50"), "margin": D("0.50")}
    ]


def test_no_valid_line_gives_empty_results_for_every_query(small_input):
    for name in ("a.csv", "b.csv"):
        write(small_input / name, HEADER + "\n" + line(quantity="0") + "\n")
    result = compute(small_input)
    assert (result.raw_lines, result.valid_lines, result.not_applicable) == (4, 0, {})
    assert result.results == {
        query: []
        for query in (
            "city_revenue",
            "daily_revenue",
            "product_sales",
            "hourly_sales",
            "window_revenue",
            "category_revenue",
            "fulfilment",
            "city_revenue_v1",
        )
    }
