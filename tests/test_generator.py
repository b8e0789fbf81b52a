"""Tests of the sales data generator (experiments/inputs/generate.py): plain Python, no Spark.

The line checks below re-implement docs/data-rules.md on their own, so the generator's
claims about its output are checked against the contract, not against itself.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest

from experiments.inputs.generate import GeneratorOptions, generate
from shared.settings import WorkloadSettings

HEADER = ["Order ID", "Product", "Quantity Ordered", "Price Each", "Order Date", "Purchase Address"]
DEFAULT_ROWS = 20_000
WATERMARK = dt.timedelta(hours=2)


# ----------------------------------------------------------------------------------------
# Independent helpers: reading, parsing and classifying lines as docs/data-rules.md says
# ----------------------------------------------------------------------------------------


def parse_order_date(text: str) -> dt.datetime | None:
    """`MM/dd/yy HH:mm`, year 2000 + yy, UTC; None when it names no real date and time."""
    match = re.fullmatch(r"(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d)", text)
    if not match:
        return None
    month, day, year, hour, minute = map(int, match.groups())
    try:
        return dt.datetime(2000 + year, month, day, hour, minute)
    except ValueError:
        return None


def classify(fields: list[str]) -> str:
    """The quarantine reason of a raw line (first that applies), or "valid"."""
    trimmed = [value.strip(" ") for value in fields]
    if all(not value for value in trimmed):
        return "blank"
    if trimmed == HEADER:
        return "header"
    if len(trimmed) != 6:
        return "field_count"
    if any(not value for value in trimmed):
        return "missing_field"
    _, _, quantity, price, order_date, address = trimmed
    if not re.fullmatch(r"\d{1,9}", quantity) or int(quantity) == 0:
        return "bad_quantity"
    if not re.fullmatch(r"\d{1,10}(\.\d{1,2})?", price) or Decimal(price) == 0:
        return "bad_price"
    if parse_order_date(order_date) is None:
        return "bad_date"
    parts = address.split(", ")
    if len(parts) != 3 or not all(parts) or not re.fullmatch(r"[A-Z]{2} \d{5}", parts[2]):
        return "bad_address"
    return "valid"


class RawLine(NamedTuple):
    file_index: int
    line_number: int  # 0 = the file's first line
    text: str
    fields: list[str]


class OrderLine(NamedTuple):
    order_id: str
    product: str
    quantity: int
    price: Decimal
    order_ts: dt.datetime
    city: str
    state: str


def read_raw_lines(out: Path) -> list[RawLine]:
    lines = []
    for file_index, path in enumerate(sorted(out.glob("sales_*.csv"))):
        text = path.read_bytes().decode("utf-8")
        assert text.endswith("\n") and "\r" not in text
        for line_number, line in enumerate(text[:-1].split("\n")):
            fields = next(csv.reader([line])) if line else []
            lines.append(RawLine(file_index, line_number, line, fields))
    return lines


def order_lines(raw_lines: list[RawLine]) -> list[OrderLine]:
    """The valid lines, in emission order (files in name order)."""
    valid = []
    for line in raw_lines:
        if classify(line.fields) == "valid":
            order_id, product, quantity, price, order_date, address = (f.strip(" ") for f in line.fields)
            _, city, state_zip = address.split(", ")
            valid.append(
                OrderLine(
                    order_id,
                    product,
                    int(quantity),
                    Decimal(price),
                    parse_order_date(order_date),
                    city,
                    state_zip.split(" ")[0],
                )
            )
    return valid


def lags_behind_running_max(lines: list[OrderLine]) -> list[dt.timedelta]:
    running_max, lags = None, []
    for line in lines:
        running_max = line.order_ts if running_max is None else max(running_max, line.order_ts)
        lags.append(running_max - line.order_ts)
    return lags


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tree_digest(out: Path) -> dict[str, str]:
    return {
        path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "data"
    summary = generate(out, GeneratorOptions(rows=DEFAULT_ROWS))
    raw = read_raw_lines(out)
    return out, summary, raw, order_lines(raw)


# ----------------------------------------------------------------------------------------
# Determinism and layout
# ----------------------------------------------------------------------------------------


def test_same_seed_and_options_give_byte_identical_output(tmp_path):
    options = GeneratorOptions(rows=3_000, files=3, late_fraction=0.02)
    generate(tmp_path / "a", options)
    generate(tmp_path / "b", options)
    first, second = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert first == second
    assert "_manifest.json" in first and "catalogue/products.csv" in first


def test_another_seed_gives_other_bytes(tmp_path):
    generate(tmp_path / "a", GeneratorOptions(rows=3_000, seed=7))
    generate(tmp_path / "b", GeneratorOptions(rows=3_000, seed=8))
    first, second = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert first.keys() == second.keys()
    assert first["sales_0000.csv"] != second["sales_0000.csv"]


def test_layout_and_formats(default_run):
    out, summary, raw, valid = default_run
    assert sorted(p.name for p in out.glob("*.csv")) == ["sales_0000.csv", "sales_0001.csv"]
    assert [Path(p).name for p in summary.sales_files] == ["sales_0000.csv", "sales_0001.csv"]
    assert sorted(p.name for p in (out / "shipments").iterdir()) == ["shipments_0000.csv", "shipments_0001.csv"]
    assert not list(out.rglob(".*"))  # no temporary files left behind
    for path in out.glob("sales_*.csv"):
        assert path.read_text(encoding="utf-8").split("\n", 1)[0] == ",".join(HEADER)
    # Valid lines look like the real export, address quoted because of its commas.
    shape = re.compile(r'\d+,[^,"]+,\d+,\d+(\.\d\d)?,\d\d/\d\d/\d\d \d\d:\d\d,"\d+ [^,"]+, [^,"]+, [A-Z]{2} \d{5}"')
    valid_texts = [line.text for line in raw if classify(line.fields) == "valid"]
    assert len(valid_texts) > 0.95 * DEFAULT_ROWS
    assert all(shape.fullmatch(text) for text in valid_texts)
    assert "141234," in raw[1].text  # Order IDs start at 141234


def test_order_ids_increase_in_steps_of_one_and_days_walk_forward(default_run):
    _, summary, _, valid = default_run
    first_seen = list(dict.fromkeys(line.order_id for line in valid))
    assert [int(order_id) for order_id in first_seen] == list(range(141234, 141234 + len(first_seen)))
    assert summary.orders == len(first_seen)
    days = sorted({line.order_ts.date() for line in valid})
    assert days[0] == dt.date(2019, 1, 1) and len(days) == round(DEFAULT_ROWS / 1500)
    assert summary.order_time_min == min(line.order_ts for line in valid).isoformat() + "+00:00"
    assert summary.order_time_max == max(line.order_ts for line in valid).isoformat() + "+00:00"


# ----------------------------------------------------------------------------------------
# Quirks, distributions and line accounting
# ----------------------------------------------------------------------------------------


def test_every_quirk_is_present_in_a_default_output(default_run):
    _, summary, raw, valid = default_run
    assert any(line.line_number > 0 and classify(line.fields) == "header" for line in raw)
    assert any(line.text == ",,,,," for line in raw)
    assert any(previous.text == line.text and classify(line.fields) == "valid" for previous, line in zip(raw, raw[1:]))
    products_by_order = defaultdict(set)
    for line in valid:
        products_by_order[line.order_id].add(line.product)
    several = sum(1 for products in products_by_order.values() if len(products) >= 2)
    assert 0.02 < several / len(products_by_order) < 0.1  # about 5% of orders
    assert {("Portland", "OR"), ("Portland", "ME")} <= {(line.city, line.state) for line in valid}
    reasons = Counter(classify(line.fields) for line in raw)
    for reason in ("field_count", "missing_field", "bad_quantity", "bad_price", "bad_date", "bad_address"):
        assert reasons[reason] > 0, reason
        assert summary.lines_by_kind[f"malformed:{reason}"] == reasons[reason]


def test_distributions_look_like_the_real_export(default_run):
    *_, valid = default_run
    by_hour = Counter(line.order_ts.hour for line in valid)
    assert by_hour[12] > 5 * by_hour[4] and by_hour[20] > 5 * by_hour[4]
    assert by_hour[12] > by_hour[8] and by_hour[20] > by_hour[23]
    by_product = Counter(line.product for line in valid)
    for frequent in (
        "AAA Batteries (4-pack)",
        "AA Batteries (4-pack)",
        "USB-C Charging Cable",
        "Lightning Charging Cable",
    ):
        assert by_product[frequent] > 3 * by_product["Macbook Pro Laptop"]
        assert by_product[frequent] > 3 * by_product["ThinkPad Laptop"]
    assert by_product["LG Dryer"] < by_product["iPhone"] / 3
    assert len(by_product) == 19

    def mean_quantity(names):
        quantities = [line.quantity for line in valid if line.product in names]
        return sum(quantities) / len(quantities)

    batteries = mean_quantity({"AAA Batteries (4-pack)", "AA Batteries (4-pack)"})
    assert batteries > 1.2 and batteries > mean_quantity({"Macbook Pro Laptop", "ThinkPad Laptop"})
    by_city = Counter((line.city, line.state) for line in valid)
    assert by_city.most_common(1)[0][0] == ("San Francisco", "CA")
    assert by_city[("Portland", "ME")] == min(by_city.values())
    prices = {line.product: line.price for line in valid}
    assert prices["iPhone"] == Decimal("700") and prices["AA Batteries (4-pack)"] == Decimal("3.84")


def test_physical_lines_add_up_to_the_summary(default_run):
    out, summary, raw, valid = default_run
    per_file = [path.read_bytes().count(b"\n") for path in sorted(out.glob("sales_*.csv"))]
    assert per_file == summary.sales_file_lines
    assert sum(per_file) == len(raw) == summary.raw_lines == DEFAULT_ROWS + len(per_file)
    assert summary.raw_lines == summary.valid_lines + summary.quarantined_lines
    reasons = Counter(classify(line.fields) for line in raw)
    assert reasons.pop("valid") == summary.valid_lines == len(valid)
    assert dict(reasons) == {k: v for k, v in summary.quarantined_by_reason.items() if v}
    assert summary.lines_by_kind["header"] == len(per_file)


def test_out_of_order_lines_stay_inside_the_watermark_by_default(default_run):
    _, summary, _, valid = default_run
    lags = lags_behind_running_max(valid)
    assert max(lags) <= dt.timedelta(minutes=90) < WATERMARK
    behind = sum(1 for lag in lags if lag > dt.timedelta(0))
    # Every out-of-order line lags; a duplicate of one lags too.
    kinds = summary.lines_by_kind
    assert kinds["out_of_order"] <= behind <= kinds["out_of_order"] + kinds["duplicate"]
    assert kinds["late"] == 0 and kinds["out_of_order"] > 0.01 * DEFAULT_ROWS


def test_the_default_watermark_is_the_builds_default_watermark():
    assert GeneratorOptions(rows=1).watermark_seconds == WorkloadSettings().watermark_seconds
    assert dt.timedelta(seconds=WorkloadSettings().watermark_seconds) == WATERMARK


def test_a_shorter_watermark_moves_the_line_between_out_of_order_and_late(tmp_path):
    watermark = dt.timedelta(seconds=WorkloadSettings(watermark_seconds=3600).watermark_seconds)
    summary = generate(
        tmp_path / "short", GeneratorOptions(rows=6_000, days=4, late_fraction=0.02, watermark_seconds=3600)
    )
    lags = lags_behind_running_max(order_lines(read_raw_lines(tmp_path / "short")))
    inside = [lag for lag in lags if dt.timedelta(0) < lag < watermark]
    beyond = [lag for lag in lags if lag >= watermark]
    kinds = summary.lines_by_kind
    guard = dt.timedelta(minutes=5)
    assert not [lag for lag in lags if watermark - guard < lag < watermark + guard]
    assert kinds["out_of_order"] <= len(inside) <= kinds["out_of_order"] + kinds["duplicate"]
    assert kinds["late"] <= len(beyond) <= kinds["late"] + kinds["duplicate"]
    assert kinds["out_of_order"] > 0 and kinds["late"] > 0


def test_late_fraction_puts_lines_beyond_the_watermark(tmp_path):
    summary = generate(tmp_path / "late", GeneratorOptions(rows=6_000, late_fraction=0.05, days=5))
    valid = order_lines(read_raw_lines(tmp_path / "late"))
    lags = lags_behind_running_max(valid)
    late = [lag for lag in lags if lag > WATERMARK]
    kinds = summary.lines_by_kind
    assert kinds["late"] > 0.03 * 6_000
    assert kinds["late"] <= len(late) <= kinds["late"] + kinds["duplicate"]
    assert all(dt.timedelta(hours=2, minutes=5) <= lag <= dt.timedelta(hours=24) for lag in late)
    assert not [lag for lag in lags if dt.timedelta(minutes=90) < lag < dt.timedelta(hours=2, minutes=5)]
    assert min(line.order_ts for line in valid) >= dt.datetime(2019, 1, 1)


# ----------------------------------------------------------------------------------------
# Catalogue, shipments, manifest
# ----------------------------------------------------------------------------------------


def test_catalogue_lists_19_products_with_cost_below_price(default_run):
    out, summary, _, valid = default_run
    rows = read_csv(out / "catalogue" / "products.csv")
    assert list(rows[0]) == ["product", "category", "unit_cost", "list_price"]
    assert len(rows) == 19 == summary.catalogue_products
    for row in rows:
        assert re.fullmatch(r"\d+\.\d\d", row["unit_cost"]) and re.fullmatch(r"\d+\.\d\d", row["list_price"])
        assert Decimal("0") < Decimal(row["unit_cost"]) < Decimal(row["list_price"])
    catalogue_prices = {row["product"]: Decimal(row["list_price"]) for row in rows}
    assert all(catalogue_prices[line.product] == line.price for line in valid)


def test_shipments_reference_valid_order_lines(default_run):
    out, summary, _, valid = default_run
    order_time = {(line.order_id, line.product): line.order_ts for line in valid}
    shipments = []
    for path in sorted((out / "shipments").glob("shipments_*.csv")):
        rows = read_csv(path)
        assert path.read_text(encoding="utf-8").startswith("order_id,product,ship_time,carrier\n")
        times = [row["ship_time"] for row in rows]
        assert times == sorted(times)  # each file is in ship-time order
        shipments += rows
    assert len(shipments) == summary.shipment_lines
    pairs = [(row["order_id"], row["product"]) for row in shipments]
    assert len(set(pairs)) == len(pairs) and set(pairs) <= order_time.keys()
    assert 0.85 < len(pairs) / len(order_time) < 0.95  # about 10% never ship
    delays = [
        dt.datetime.strptime(row["ship_time"], "%Y-%m-%d %H:%M:%S") - order_time[pair]
        for row, pair in zip(shipments, pairs)
    ]
    assert all(dt.timedelta(hours=1) <= delay <= dt.timedelta(hours=96) for delay in delays)
    assert any(delay > dt.timedelta(hours=72) for delay in delays)
    assert {row["carrier"] for row in shipments} == {"UPS", "FedEx", "USPS", "DHL"}


def test_shipments_file_k_follows_the_time_slice_of_sales_file_k(tmp_path):
    out = tmp_path / "out"
    generate(out, GeneratorOptions(rows=9_000, files=4, days=8))
    raw = read_raw_lines(out)
    shipment_paths = sorted((out / "shipments").glob("shipments_*.csv"))
    slice_end = dt.datetime.min  # running max order time through sales file k
    for index, path in enumerate(shipment_paths[:-1]):
        file_lines = order_lines([line for line in raw if line.file_index == index])
        slice_end = max([slice_end] + [line.order_ts for line in file_lines])
        ship_times = [dt.datetime.strptime(row["ship_time"], "%Y-%m-%d %H:%M:%S") for row in read_csv(path)]
        assert ship_times and max(ship_times) <= slice_end
    assert read_csv(shipment_paths[-1])  # the last file takes everything still pending


def test_quirks_can_all_be_turned_off(tmp_path):
    options = GeneratorOptions(
        rows=2_000,
        out_of_order_fraction=0,
        duplicate_fraction=0,
        malformed_fraction=0,
        blank_fraction=0,
        repeated_header_fraction=0,
    )
    summary = generate(tmp_path / "clean", options)
    raw = read_raw_lines(tmp_path / "clean")
    kinds = {kind: count for kind, count in summary.lines_by_kind.items() if count}
    assert kinds == {"on_time": 2_000, "header": 1}
    assert Counter(classify(line.fields) for line in raw) == {"valid": 2_000, "header": 1}
    assert set(lags_behind_running_max(order_lines(raw))) == {dt.timedelta(0)}


def test_manifest_records_options_summary_and_time_range(default_run):
    out, summary, _, _ = default_run
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"]["rows"] == DEFAULT_ROWS and manifest["resolved"]["files"] == 2
    assert manifest["summary"] == summary.to_json()
    assert manifest["order_time_range"] == {"min": summary.order_time_min, "max": summary.order_time_max}
    assert manifest["summary"]["sales_files"] == ["sales_0000.csv", "sales_0001.csv"]


def test_catalogue_and_shipments_can_be_left_out(tmp_path):
    summary = generate(tmp_path / "out", GeneratorOptions(rows=500, catalogue=False, shipments=False))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_manifest.json", "sales_0000.csv"]
    assert summary.shipment_lines == 0 and summary.catalogue_file is None


def test_progress_is_reported_every_10k_rows_and_at_the_end(tmp_path):
    calls = []
    generate(
        tmp_path / "out",
        GeneratorOptions(rows=25_000, catalogue=False, shipments=False),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]


def test_spreadsheet_files_hold_the_same_lines_as_a_spreadsheet_saves_them(tmp_path):
    from experiments.reference.oracle import compute
    from shared.raw_lines import iter_raw_lines

    options = dict(rows=900, files=3, seed=11, shipments=False)
    plain = generate(tmp_path / "plain", GeneratorOptions(**options))
    sheet = generate(tmp_path / "sheet", GeneratorOptions(**options, spreadsheet_files=2))
    names = [Path(path).name for path in plain.sales_files]
    for name in names[:2]:
        data = (tmp_path / "sheet" / name).read_bytes()
        assert data.startswith("\ufeffOrder ID,".encode()) and not data.endswith((b"\r", b"\n"))
        assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
        assert list(iter_raw_lines(tmp_path / "sheet" / name)) == list(iter_raw_lines(tmp_path / "plain" / name))
    assert (tmp_path / "sheet" / names[2]).read_bytes() == (tmp_path / "plain" / names[2]).read_bytes()
    assert (sheet.lines_by_kind, sheet.sales_file_lines) == (plain.lines_by_kind, plain.sales_file_lines)
    # The oracle counts them alike: each mark-led first line is a header, no line is lost.
    counted = compute(tmp_path / "sheet")
    assert (counted.raw_lines, counted.valid_lines) == (sheet.raw_lines, sheet.valid_lines)
    assert counted.quarantine == sheet.quarantined_by_reason
    # The manifest names the option only when it is used (default outputs keep their bytes).
    recorded = [json.loads((tmp_path / run / "_manifest.json").read_text())["options"] for run in ("plain", "sheet")]
    assert "spreadsheet_files" not in recorded[0] and recorded[1]["spreadsheet_files"] == 2


def test_windows_1252_and_binary_files_are_bad_lines_that_the_oracle_counts_as_the_generator(tmp_path):
    from experiments.reference.oracle import compute
    from shared.raw_lines import iter_raw_line_bytes

    options = dict(rows=900, files=3, seed=11, shipments=False)
    plain = generate(tmp_path / "plain", GeneratorOptions(**options))
    poisoned = generate(tmp_path / "poison", GeneratorOptions(**options, windows_1252_files=1, binary_files=2))
    names = [Path(path).name for path in poisoned.sales_files]
    assert (
        names
        == sorted(names)
        == ["sales_0000.csv", "sales_0000_stray.csv", "sales_0001.csv", "sales_0001_stray.csv", "sales_0002.csv"]
    )
    for name in ("sales_0000.csv", "sales_0001.csv"):  # the others are untouched, byte for byte
        assert (tmp_path / "poison" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    exported = (tmp_path / "poison" / "sales_0002.csv").read_bytes()
    assert "San José".encode("cp1252") in exported and b"\xc3" not in exported
    for name in ("sales_0000_stray.csv", "sales_0001_stray.csv"):
        lines = list(iter_raw_line_bytes(tmp_path / "poison" / name))
        assert len(lines) == 40 and all(b"\xff" in line for line in lines)
    kinds = poisoned.lines_by_kind
    assert kinds["too_long"] == 1 and kinds["not_utf8"] > 80 and kinds["on_time"] < plain.lines_by_kind["on_time"]
    counted = compute(tmp_path / "poison")
    assert (counted.raw_lines, counted.valid_lines) == (poisoned.raw_lines, poisoned.valid_lines)
    assert counted.quarantine == poisoned.quarantined_by_reason
    assert sum(poisoned.sales_file_lines) == poisoned.raw_lines
    later = generate(tmp_path / "later", GeneratorOptions(**options, binary_files=1, binary_files_from=1))
    assert [Path(path).name for path in later.sales_files] == [
        "sales_0000.csv",
        "sales_0001.csv",
        "sales_0001_stray.csv",
        "sales_0002.csv",
    ]


# ----------------------------------------------------------------------------------------
# Validation and the output directory
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"rows": 0}, "rows must be at least 1"),
        ({"rows": 2.5}, "rows must be an integer"),
        ({"duplicate_fraction": 1.0}, r"duplicate_fraction must be a number in \[0, 1\)"),
        ({"late_fraction": -0.1}, r"late_fraction must be a number in \[0, 1\)"),
        ({"malformed_fraction": 0.3, "late_fraction": 0.25}, "below 0.5"),
        ({"files": 0}, "files must be at least 1"),
        ({"files": 11}, r"files \(11\) cannot exceed rows \(10\)"),
        ({"days": 0}, "days must be at least 1"),
        ({"start": "01/01/2019"}, "start must be a day written YYYY-MM-DD"),
        ({"start": "2099-12-01", "days": 40}, "two-digit years"),
        ({"watermark_seconds": 60}, "watermark_seconds must be at least"),
        ({"spreadsheet_files": -1}, "spreadsheet_files must be at least 0"),
        (
            {"files": 2, "spreadsheet_files": 3},
            r"spreadsheet_files \(3\) and windows_1252_files \(0\) are 3 of the sales files; there are 2",
        ),
        ({"files": 2, "spreadsheet_files": 1, "windows_1252_files": 2}, r"are 3 of the sales files; there are 2"),
        ({"binary_files": -1}, r"binary_files"),
        ({"files": 2, "binary_files": 3}, r"binary_files \(3\) from sales file 0 go past the sales files \(2\)"),
        ({"files": 3, "binary_files": 1, "binary_files_from": 3}, r"from sales file 3 go past the sales files \(3\)"),
    ],
)
def test_bad_options_are_rejected_before_writing(tmp_path, changes, message):
    options = GeneratorOptions(**{"rows": 10, **changes})
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "out", options)
    assert not (tmp_path / "out").exists()


def test_a_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        generate(tmp_path, GeneratorOptions(rows=10))
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        generate(tmp_path / "file", GeneratorOptions(rows=10))


def test_a_previous_output_is_replaced_but_not_one_with_extra_files(tmp_path):
    out = tmp_path / "out"
    generate(out, GeneratorOptions(rows=300, files=3))
    summary = generate(out, GeneratorOptions(rows=200, files=2))
    assert sorted(p.name for p in out.glob("sales_*.csv")) == ["sales_0000.csv", "sales_0001.csv"]
    assert sorted(p.name for p in (out / "shipments").iterdir()) == ["shipments_0000.csv", "shipments_0001.csv"]
    assert summary.raw_lines == 202
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        generate(out, GeneratorOptions(rows=100))
    assert (out / "notes.txt").exists() and (out / "sales_0001.csv").exists()


def test_an_output_with_stray_binary_files_is_a_previous_output_that_generate_replaces(tmp_path):
    options = dict(rows=300, files=2, seed=5, shipments=False)
    generate(tmp_path / "out", GeneratorOptions(**options, binary_files=1))
    again = generate(tmp_path / "out", GeneratorOptions(**options))  # no stray file this time
    assert sorted(p.name for p in (tmp_path / "out").glob("sales_*.csv")) == ["sales_0000.csv", "sales_0001.csv"]
    assert len(again.sales_files) == 2
