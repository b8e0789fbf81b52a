"""The oracle: an independent, Spark-free reference implementation of the query catalogue.

Every build is held to what this module computes straight from the raw CSV files of an
input directory, so it is written to be obviously correct rather than fast, in two steps:

1. Lines, in plain Python: each raw line is parsed by hand following docs/data-rules.md
   table row by table row (`classify_line`); a valid line's fields are appended to column
   lists, a quarantined one counts under its reason.
2. Queries, in pandas: the column lists become one DataFrame of the valid order lines
   (memory grows with the number of valid lines: fine up to a few million) and every query
   is a groupby over it; the catalogue join and the shipments join are pandas merges and
   the sliding windows a pandas explode (one row per line and window).

Money is `decimal.Decimal` from the text to the export, never a float: money columns are
object-dtype columns of Decimal, which pandas sums with Python's `+`, and every sum runs in
a decimal context that raises instead of rounding (see `EXACT`). The fulfilment average is
computed from the integer sum of seconds in integer arithmetic (`average_hours`). Result
rows hold plain Python values only (str, int, Decimal, datetime.date, naive
datetime.datetime), checked column by column against the query catalogue (`_rows`).
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from shared.export import (
    DATE, INTEGER, MONEY, QUERIES, QUERY_NAMES, STRING, TIMESTAMP, clear_results, write_accounting,
    write_export,
)
from shared.settings import (
    CATALOGUE_COLUMNS, HEADER, QUARANTINE_REASONS, SHIPMENT_COLUMNS, UNCATALOGUED, WorkloadSettings,
)

BUILD = "oracle"

# [0-9] rather than \d: in Python \d also matches non-ASCII digits, the rules mean ASCII.
QUANTITY_RE = re.compile(r"[0-9]{1,9}")
PRICE_RE = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
ORDER_DATE_RE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2})")
STATE_ZIP_RE = re.compile(r"([A-Z]{2}) ([0-9]{5})")
SHIP_TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
CENT = Decimal("0.01")
EPOCH = pd.Timestamp(1970, 1, 1)  # naive: order and ship times are UTC wall-clock times
ONE_SECOND = pd.Timedelta(seconds=1)
# Decimal arithmetic rounds silently once a result needs more digits than the context's
# precision; under EXACT it raises instead, so a money sum is exact or the run fails.
EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.Rounded,
                                        decimal.InvalidOperation, decimal.DivisionByZero])


@dataclass
class OracleResult:
    raw_lines: int
    valid_lines: int
    quarantine: dict[str, int]            # reason -> count, every reason, in table order
    results: dict[str, list[dict]]        # applicable query -> rows sorted by key
    not_applicable: dict[str, str] = field(default_factory=dict)  # query -> why
    order_time_range: tuple[dt.datetime, dt.datetime] | None = None


# ---------------------------------------------------------------------------------------
# Raw lines
# ---------------------------------------------------------------------------------------

def sales_files(input_dir) -> list[Path]:
    """The sales files of an input directory: top-level *.csv, in file-name order.

    Names starting with "." or "_" are skipped, as Spark's file sources skip them
    (in-flight temporary files and metadata such as _manifest.json).
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input directory {str(root)!r} does not exist or is not a directory")
    files = sorted(
        (p for p in root.iterdir()
         if p.is_file() and p.name.endswith(".csv") and not p.name.startswith((".", "_"))),
        key=lambda p: p.name,
    )
    if not files:
        raise ValueError(f"input directory {str(root)!r} holds no top-level .csv sales file")
    return files


def read_raw_lines(input_dir) -> Iterator[tuple[str, str]]:
    """(file name, line text without its ending) for every physical line of every sales file.

    Opening with newline="" makes Python end lines at exactly \\n, \\r\\n and \\r (and not
    at the other characters str.splitlines knows), and a final line ending does not start
    an extra empty line.
    """
    for path in sales_files(input_dir):
        with open(path, encoding="utf-8", newline="") as handle:
            line_number = 0
            try:
                for line_number, line in enumerate(handle, start=1):
                    yield path.name, _without_line_ending(line)
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}: not UTF-8 text after line {line_number}: {error}") from None


def _without_line_ending(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith(("\n", "\r")):
        return line[:-1]
    return line


# ---------------------------------------------------------------------------------------
# Parsing one line: docs/data-rules.md, one check per row of the table, in order
# ---------------------------------------------------------------------------------------

def classify_line(text: str) -> tuple[dict | None, str | None]:
    """(valid order line, None) or (None, quarantine reason) for one raw line."""
    raw_fields = _csv_fields(text)
    if raw_fields is None:
        return None, "field_count"
    fields = [value.strip(" ") for value in raw_fields]
    if all(value == "" for value in fields):
        return None, "blank"
    if tuple(fields) == HEADER:
        return None, "header"
    if len(fields) != len(HEADER):
        return None, "field_count"
    if "" in fields:
        return None, "missing_field"
    order_id, product, quantity_text, price_text, date_text, address = fields

    quantity = _parse_quantity(quantity_text)
    if quantity is None:
        return None, "bad_quantity"
    price = _parse_price(price_text)
    if price is None:
        return None, "bad_price"
    order_ts = _parse_order_date(date_text)
    if order_ts is None:
        return None, "bad_date"
    parts = _split_address(address)
    if parts is None:
        return None, "bad_address"
    street, city, state, zip_code = parts

    return {
        "order_id": order_id, "product": product, "quantity": quantity, "price": price,
        "revenue": quantity * price, "order_ts": order_ts,
        "street": street, "city": city, "state": state, "zip": zip_code,
    }, None


def _csv_fields(text: str) -> list[str] | None:
    """The fields of one line as docs/data-rules.md splits them, or None when the line
    has an odd number of double quotes (its fields cannot be told apart).

    Scans the line once: a comma splits only outside quotes; a field wrapped in quotes
    loses them and "" inside becomes "; any other quote is an ordinary character."""
    if text.count('"') % 2:
        return None
    fields, start, inside = [], 0, False
    for position, char in enumerate(text):
        if char == '"':
            inside = not inside
        elif char == "," and not inside:
            fields.append(text[start:position])
            start = position + 1
    fields.append(text[start:])
    return [_unwrap(field) for field in fields]


def _unwrap(field: str) -> str:
    if len(field) >= 2 and field.startswith('"') and field.endswith('"'):
        return field[1:-1].replace('""', '"')
    return field


def _parse_quantity(text: str) -> int | None:
    if not QUANTITY_RE.fullmatch(text) or int(text) == 0:
        return None
    return int(text)


def _parse_price(text: str) -> Decimal | None:
    if not PRICE_RE.fullmatch(text) or Decimal(text) == 0:
        return None
    return Decimal(text).quantize(CENT)  # exact: the text has at most two decimals


def _parse_order_date(text: str) -> dt.datetime | None:
    match = ORDER_DATE_RE.fullmatch(text)
    if not match:
        return None
    month, day, year, hour, minute = (int(part) for part in match.groups())
    try:
        return dt.datetime(2000 + year, month, day, hour, minute)  # naive = UTC wall clock
    except ValueError:  # 02/30, 13/01, 24:00, 12:60 ...
        return None


def _split_address(address: str) -> tuple[str, str, str, str] | None:
    parts = address.split(", ")
    if len(parts) != 3:
        return None
    street, city, state_zip = parts
    match = STATE_ZIP_RE.fullmatch(state_zip)
    if not match or street == "" or city == "":
        return None
    state, zip_code = match.groups()
    return street, city, state, zip_code


# ---------------------------------------------------------------------------------------
# Reference inputs: the catalogue and the shipments (errors here are fatal, not quarantine)
# ---------------------------------------------------------------------------------------

def catalogue_path(input_dir) -> Path:
    return Path(input_dir) / "catalogue" / "products.csv"


def shipment_files(input_dir) -> list[Path]:
    folder = Path(input_dir) / "shipments"
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and p.name.endswith(".csv")),
                  key=lambda p: p.name)


def load_catalogue(path: Path) -> pd.DataFrame:
    """One row per product: product, category, unit_cost (Decimal)."""
    products, categories, unit_costs = [], [], []
    for line_number, fields in _reference_rows(path, CATALOGUE_COLUMNS):
        product, category, unit_cost_text, _list_price = fields
        if product == "" or category == "":
            raise _bad_reference_line(path, line_number, "empty product or category")
        if not PRICE_RE.fullmatch(unit_cost_text):
            raise _bad_reference_line(path, line_number, f"unit_cost {unit_cost_text!r} is not a decimal amount")
        if product in products:
            # A second row would make the join count the product's lines twice.
            raise _bad_reference_line(path, line_number, f"product {product!r} is listed twice")
        products.append(product)
        categories.append(category)
        unit_costs.append(Decimal(unit_cost_text))
    return pd.DataFrame({
        "product": pd.Series(products, dtype=object),
        "category": pd.Series(categories, dtype=object),
        "unit_cost": _money(unit_costs),
    })


def load_shipments(paths: Iterable[Path]) -> pd.DataFrame:
    """One row per shipment: order_id, product, ship_time (several may share a key)."""
    order_ids, products, ship_times = [], [], []
    for path in paths:
        for line_number, fields in _reference_rows(path, SHIPMENT_COLUMNS):
            order_id, product, ship_time_text, _carrier = fields
            if order_id == "" or product == "":
                raise _bad_reference_line(path, line_number, "empty order_id or product")
            ship_time = _parse_ship_time(ship_time_text)
            if ship_time is None:
                raise _bad_reference_line(
                    path, line_number, f"ship_time {ship_time_text!r} is not a real YYYY-MM-DD HH:MM:SS time")
            order_ids.append(order_id)
            products.append(product)
            ship_times.append(ship_time)
    return pd.DataFrame({
        "order_id": pd.Series(order_ids, dtype=object),
        "product": pd.Series(products, dtype=object),
        "ship_time": pd.Series(ship_times, dtype="datetime64[ns]"),
    })


def _parse_ship_time(text: str) -> dt.datetime | None:
    match = SHIP_TIME_RE.fullmatch(text)
    if not match:
        return None
    try:
        return dt.datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _reference_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every data row of a reference CSV whose header must be `columns`."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None or tuple(header) != columns:
                raise _bad_reference_line(path, 1, f"the header must be {','.join(columns)}, got {header!r}")
            for fields in reader:
                if len(fields) != len(columns):
                    raise _bad_reference_line(
                        path, reader.line_num, f"{len(fields)} fields instead of {len(columns)}")
                yield reader.line_num, fields
        except csv.Error as error:
            raise _bad_reference_line(path, reader.line_num, str(error)) from None
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text: {error}") from None


def _bad_reference_line(path: Path, line_number: int, problem: str) -> ValueError:
    return ValueError(f"{path}, line {line_number}: {problem}")


# ---------------------------------------------------------------------------------------
# The queries: what one valid order line adds, as (key, addends) in the spec's column order
# ---------------------------------------------------------------------------------------

Contribution = tuple[tuple, tuple]
Contributor = Callable[[dict], Iterable[Contribution]]


def city_revenue(line: dict) -> Iterable[Contribution]:
    yield (line["city"], line["state"]), (line["revenue"], 1)


def daily_revenue(line: dict) -> Iterable[Contribution]:
    yield (line["order_ts"].date(),), (line["revenue"], 1)


def product_sales(line: dict) -> Iterable[Contribution]:
    yield (line["product"],), (line["quantity"], line["revenue"])


def hourly_sales(line: dict) -> Iterable[Contribution]:
    yield (line["order_ts"].hour,), (1, line["quantity"], line["revenue"])


def city_revenue_v1(line: dict) -> Iterable[Contribution]:
    yield (line["city"],), (line["revenue"],)


def window_starts(order_ts: dt.datetime, window_seconds: int, slide_seconds: int) -> list[dt.datetime]:
    """Starts s of every window holding order_ts: s a multiple of the slide since the epoch
    and s <= t < s + window (window_seconds / slide_seconds windows per line)."""
    t = (order_ts - EPOCH) // ONE_SECOND
    latest = t - t % slide_seconds
    return [EPOCH + dt.timedelta(seconds=s) for s in range(latest, t - window_seconds, -slide_seconds)]


def window_revenue(settings: WorkloadSettings) -> Contributor:
    window = dt.timedelta(seconds=settings.window_seconds)

    def contribute(line: dict) -> Iterable[Contribution]:
        for start in window_starts(line["order_ts"], settings.window_seconds, settings.slide_seconds):
            yield (start, start + window), (line["revenue"], 1)
    return contribute


def category_revenue(catalogue: dict[str, tuple[str, Decimal]]) -> Contributor:
    def contribute(line: dict) -> Iterable[Contribution]:
        if line["product"] not in catalogue:  # kept, so that no line is lost in the join
            yield (UNCATALOGUED,), (line["revenue"], Decimal("0.00"))
            return
        category, unit_cost = catalogue[line["product"]]
        yield (category,), (line["revenue"], line["quantity"] * (line["price"] - unit_cost))
    return contribute


def fulfilment(shipments: dict[tuple[str, str], list[dt.datetime]], settings: WorkloadSettings) -> Contributor:
    """Adds (1 pair, seconds to ship) per shipment matching the line within the time bound;
    _finish_fulfilment turns the sums into (shipped_lines, avg_hours_to_ship)."""
    within = dt.timedelta(seconds=settings.ship_within_seconds)

    def contribute(line: dict) -> Iterable[Contribution]:
        order_ts = line["order_ts"]
        for ship_time in shipments.get((line["order_id"], line["product"]), ()):
            if order_ts <= ship_time <= order_ts + within:
                yield (ship_time.date(),), (1, (ship_time - order_ts) // ONE_SECOND)
    return contribute


def average_hours(total_seconds: int, pairs: int) -> Decimal:
    """total_seconds / (3600 * pairs) rounded half-up to 2 places, in exact integer arithmetic:
    round_half_up(a / b) = floor((2a + b) / 2b) for a >= 0, b > 0, here in hundredths."""
    numerator, denominator = 100 * total_seconds, 3600 * pairs
    hundredths = (2 * numerator + denominator) // (2 * denominator)
    return Decimal(hundredths).scaleb(-2)


def _finish_fulfilment(values: tuple) -> tuple:
    pairs, total_seconds = values
    return pairs, average_hours(total_seconds, pairs)


FINISHERS: dict[str, Callable[[tuple], tuple]] = {"fulfilment": _finish_fulfilment}


# ---------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------

def compute(input_dir, settings: WorkloadSettings = WorkloadSettings()) -> OracleResult:
    settings = settings.validated()
    sales_files(input_dir)  # fail early and clearly on a missing or empty input directory
    contributors, not_applicable = _contributors(input_dir, settings)

    sums: dict[str, dict[tuple, tuple]] = {query: {} for query in contributors}
    quarantine = Counter()
    raw_lines = valid_lines = 0
    earliest = latest = None
    for _file_name, text in read_raw_lines(input_dir):
        raw_lines += 1
        line, reason = classify_line(text)
        if reason is not None:
            quarantine[reason] += 1
            continue
        valid_lines += 1
        earliest = line["order_ts"] if earliest is None else min(earliest, line["order_ts"])
        latest = line["order_ts"] if latest is None else max(latest, line["order_ts"])
        for query, contribute in contributors.items():
            for key, addends in contribute(line):
                _add(sums[query], key, addends)

    if raw_lines != valid_lines + sum(quarantine.values()):  # cannot happen; checked anyway
        raise AssertionError("raw lines != valid + quarantined")
    return OracleResult(
        raw_lines=raw_lines,
        valid_lines=valid_lines,
        quarantine={reason: quarantine[reason] for reason in QUARANTINE_REASONS},
        results={query: _rows(query, sums[query]) for query in QUERY_NAMES if query in sums},
        not_applicable=not_applicable,
        order_time_range=None if earliest is None else (earliest, latest),
    )


def _contributors(input_dir, settings: WorkloadSettings) -> tuple[dict[str, Contributor], dict[str, str]]:
    """The contributor of every applicable query, and why the others are not applicable."""
    contributors: dict[str, Contributor] = {
        "city_revenue": city_revenue,
        "daily_revenue": daily_revenue,
        "product_sales": product_sales,
        "hourly_sales": hourly_sales,
        "window_revenue": window_revenue(settings),
        "city_revenue_v1": city_revenue_v1,
    }
    not_applicable: dict[str, str] = {}

    products = catalogue_path(input_dir)
    if products.is_file():
        contributors["category_revenue"] = category_revenue(load_catalogue(products))
    else:
        not_applicable["category_revenue"] = f"no product catalogue: {products} does not exist"

    shipments = shipment_files(input_dir)
    if shipments:
        contributors["fulfilment"] = fulfilment(load_shipments(shipments), settings)
    else:
        not_applicable["fulfilment"] = (
            f"no shipments: {Path(input_dir) / 'shipments'} does not exist or holds no .csv file")
    return contributors, not_applicable


def _add(sums: dict[tuple, tuple], key: tuple, addends: tuple) -> None:
    current = sums.get(key)
    sums[key] = addends if current is None else tuple(map(operator.add, current, addends))


def _rows(query: str, sums: dict[tuple, tuple]) -> list[dict]:
    columns = QUERIES[query].columns
    finish = FINISHERS.get(query, lambda values: values)
    return [dict(zip(columns, key + finish(values))) for key, values in sorted(sums.items())]


def run_oracle(input_dir, workdir, settings: WorkloadSettings = WorkloadSettings()) -> OracleResult:
    """compute(), then write every applicable export and the quarantine summary."""
    result = compute(input_dir, settings)
    # A file left by an earlier run on another input must not pass for this one's.
    clear_results(workdir, BUILD)
    for query in QUERY_NAMES:
        if query in result.results:
            write_export(workdir, BUILD, query, result.results[query])
    write_accounting(workdir, BUILD, result.raw_lines, result.valid_lines, result.quarantine)
    return result
