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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd

from shared.catalogue import DATE, INTEGER, MONEY, QUERIES, QUERY_NAMES, STRING, TIMESTAMP
from shared.export import clear_results, write_accounting, write_export
from shared.raw_lines import MAX_LINE_CHARS, iter_raw_lines
from shared.settings import (
    CATALOGUE_COLUMNS,
    HEADER,
    QUARANTINE_REASONS,
    SHIPMENT_COLUMNS,
    UNCATALOGUED,
    WorkloadSettings,
)

BUILD = "oracle"

# [0-9] rather than \d: in Python \d also matches non-ASCII digits, the rules mean ASCII.
QUANTITY_RE = re.compile(r"[0-9]{1,9}")
PRICE_RE = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
ORDER_DATE_RE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2})")
STATE_ZIP_RE = re.compile(r"([A-Z]{2}) ([0-9]{5})")
SHIP_TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
CENT = Decimal("0.01")
# A UTF-8 byte-order mark as decoded text: spreadsheet programs write one before a file's
# first header. It is not part of the first field (docs/data-rules.md, "Raw lines").
BYTE_ORDER_MARK = "\ufeff"
# Times are naive datetime64 columns (UTC wall clock) in seconds: nanoseconds, pandas' default,
# would not hold the years 1-9999 a ship time may have.
TIME = "datetime64[s]"
EPOCH = pd.Timestamp(1970, 1, 1)
ONE_SECOND = pd.Timedelta(seconds=1)
# Decimal arithmetic rounds silently once a result needs more digits than the context's
# precision; under EXACT it raises instead, so a money sum is exact or the run fails.
EXACT = decimal.Context(
    prec=60, traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation, decimal.DivisionByZero]
)


@dataclass
class OracleResult:
    raw_lines: int
    valid_lines: int
    quarantine: dict[str, int]  # reason -> count, every reason, in table order
    results: dict[str, list[dict]]  # applicable query -> rows sorted by key
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
        (p for p in root.iterdir() if p.is_file() and p.name.endswith(".csv") and not p.name.startswith((".", "_"))),
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
        for text in iter_raw_lines(path):
            yield path.name, text


# ---------------------------------------------------------------------------------------
# Parsing one line: docs/data-rules.md, one check per row of the table, in order
# ---------------------------------------------------------------------------------------


def classify_line(text: str) -> tuple[dict | None, str | None]:
    """(valid order line, None) or (None, quarantine reason) for one raw line."""
    if "\ufffd" in text:  # bytes that were not UTF-8, as the line reader decodes them
        return None, "not_utf8"
    if len(text) > MAX_LINE_CHARS:
        return None, "too_long"
    raw_fields = _csv_fields(_without_byte_order_mark(text))
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
        "order_id": order_id,
        "product": product,
        "quantity": quantity,
        "price": price,
        "revenue": quantity * price,
        "order_ts": order_ts,
        "street": street,
        "city": city,
        "state": state,
        "zip": zip_code,
    }, None


def _without_byte_order_mark(text: str) -> str:
    """text without one leading byte-order mark. read_raw_lines already skips the mark at
    the very start of a file; this is for a line further down that starts with one (a line
    of concatenated exports, a Kafka message): a line cannot tell if it opened a file."""
    return text.removeprefix(BYTE_ORDER_MARK)


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
    return sorted((p for p in folder.iterdir() if p.is_file() and p.name.endswith(".csv")), key=lambda p: p.name)


def load_catalogue(path: Path) -> pd.DataFrame:
    """One row per product: product, category, unit_cost (Decimal)."""
    products, categories, unit_costs = [], [], []
    listed: set[str] = set()
    for line_number, fields in _reference_rows(path, CATALOGUE_COLUMNS):
        product, category, unit_cost_text, _list_price = fields
        if product == "" or category == "":
            raise _bad_reference_line(path, line_number, "empty product or category")
        if not PRICE_RE.fullmatch(unit_cost_text):
            raise _bad_reference_line(path, line_number, f"unit_cost {unit_cost_text!r} is not a decimal amount")
        if product in listed:
            # A second row would make the join count the product's lines twice.
            raise _bad_reference_line(path, line_number, f"product {product!r} is listed twice")
        listed.add(product)
        products.append(product)
        categories.append(category)
        unit_costs.append(Decimal(unit_cost_text))
    return pd.DataFrame(
        {
            "product": pd.Series(products, dtype=object),
            "category": pd.Series(categories, dtype=object),
            "unit_cost": _money(unit_costs),
        }
    )


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
                    path, line_number, f"ship_time {ship_time_text!r} is not a real YYYY-MM-DD HH:MM:SS time"
                )
            order_ids.append(order_id)
            products.append(product)
            ship_times.append(ship_time)
    return pd.DataFrame(
        {
            "order_id": pd.Series(order_ids, dtype=object),
            "product": pd.Series(products, dtype=object),
            "ship_time": pd.Series(ship_times, dtype=TIME),
        }
    )


def _parse_ship_time(text: str) -> dt.datetime | None:
    match = SHIP_TIME_RE.fullmatch(text)
    if not match:
        return None
    try:
        # named, not *-spread: a spread could reach datetime's tzinfo
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return dt.datetime(year, month, day, hour, minute, second)
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
                    raise _bad_reference_line(path, reader.line_num, f"{len(fields)} fields instead of {len(columns)}")
                yield reader.line_num, fields
        except csv.Error as error:
            raise _bad_reference_line(path, reader.line_num, str(error)) from None
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text: {error}") from None


def _bad_reference_line(path: Path, line_number: int, problem: str) -> ValueError:
    return ValueError(f"{path}, line {line_number}: {problem}")


# ---------------------------------------------------------------------------------------
# The valid order lines as one DataFrame
# ---------------------------------------------------------------------------------------

# The line fields the queries read, as classify_line names them, and their column dtypes.
LINE_DTYPES = {
    "order_id": object,
    "product": object,
    "quantity": "int64",
    "price": object,
    "revenue": object,
    "order_ts": TIME,
    "city": object,
    "state": object,
}
MAX_QUANTITY = 10**9 - 1  # nine digits: an int64 sum of quantities cannot overflow below 9e9 lines


def read_valid_lines(input_dir) -> tuple[pd.DataFrame, int, Counter]:
    """(the valid order lines, the number of raw lines, quarantined lines by reason).

    The frame has one row per valid line, duplicates included, in input order, built from
    one list per column (a dict per line would cost several times the memory)."""
    columns: dict[str, list] = {name: [] for name in LINE_DTYPES}
    quarantine: Counter = Counter()
    raw_lines = 0
    for _file_name, text in read_raw_lines(input_dir):
        raw_lines += 1
        line, reason = classify_line(text)
        if reason is not None:
            quarantine[reason] += 1
            continue
        assert line is not None  # no reason: a valid line
        for name, values in columns.items():
            values.append(line[name])
    lines = pd.DataFrame({name: pd.Series(values, dtype=LINE_DTYPES[name]) for name, values in columns.items()})
    _check_money(lines["price"])
    _check_money(lines["revenue"])
    if len(lines) > (2**63 - 1) // MAX_QUANTITY:
        raise ValueError(f"{len(lines)} valid lines: too many for exact int64 quantity sums")
    return lines, raw_lines, quarantine


def _money(values: list[Decimal], index=None) -> pd.Series:
    """An object column of Decimal (pandas would keep Decimal anyway; saying so is clearer)."""
    return _check_money(pd.Series(values, index=index, dtype=object))


def _check_money(column: pd.Series) -> pd.Series:
    """column, after checking it is an object column of Decimal only: no float, no NaN
    (pandas sums would skip a NaN silently)."""
    if column.dtype != object or not all(type(value) is Decimal for value in column):
        raise AssertionError(f"money column {column.name!r} holds something other than Decimal")
    return column


# ---------------------------------------------------------------------------------------
# The queries: each a pandas groupby over the valid lines, giving the spec's columns
# ---------------------------------------------------------------------------------------


def _group(frame: pd.DataFrame, keys: list[str], **values: tuple[str, str]) -> pd.DataFrame:
    """frame grouped by the key columns, one named aggregation per value column, keys as
    columns. dropna=False: a key can never be null here, but if it were it would show, not
    vanish. Object (Decimal) columns are summed with Python's +; _rows sorts the rows."""
    return frame.groupby(keys, sort=False, dropna=False).agg(**values).reset_index()


def city_revenue(lines: pd.DataFrame) -> pd.DataFrame:
    return _group(lines, ["city", "state"], revenue=("revenue", "sum"), order_lines=("revenue", "size"))


def daily_revenue(lines: pd.DataFrame) -> pd.DataFrame:
    dated = lines.assign(date=lines["order_ts"].dt.date)  # datetime.date objects
    return _group(dated, ["date"], revenue=("revenue", "sum"), order_lines=("revenue", "size"))


def product_sales(lines: pd.DataFrame) -> pd.DataFrame:
    return _group(lines, ["product"], quantity=("quantity", "sum"), revenue=("revenue", "sum"))


def hourly_sales(lines: pd.DataFrame) -> pd.DataFrame:
    timed = lines.assign(hour=lines["order_ts"].dt.hour)
    return _group(
        timed, ["hour"], order_lines=("revenue", "size"), quantity=("quantity", "sum"), revenue=("revenue", "sum")
    )


def city_revenue_v1(lines: pd.DataFrame) -> pd.DataFrame:
    return _group(lines, ["city"], revenue=("revenue", "sum"))


def window_revenue(lines: pd.DataFrame, settings: WorkloadSettings) -> pd.DataFrame:
    """Every line exploded into one row per window holding its order time t, then grouped.

    The windows holding t have the starts s that are multiples of the slide since the epoch
    with s <= t < s + window: with latest = t - t mod slide (the last such multiple <= t),
    s = latest - k x slide for k = 0 .. window/slide - 1 (window is a multiple of slide)."""
    slide, window = settings.slide_seconds, settings.window_seconds
    t = (lines["order_ts"] - EPOCH) // ONE_SECOND  # int64 seconds since the epoch
    windows = (
        lines[["revenue"]]
        .assign(
            latest=t - t % slide,
            k=[list(range(window // slide))] * len(lines),
        )
        .explode("k")
    )
    start_seconds = windows["latest"] - windows["k"].astype("int64") * slide
    window_start = EPOCH + pd.to_timedelta(start_seconds, unit="s")
    windows = windows.assign(
        window_start=window_start, window_end=window_start + pd.Timedelta(seconds=window).as_unit("s")
    )
    return _group(windows, ["window_start", "window_end"], revenue=("revenue", "sum"), order_lines=("revenue", "size"))


def category_revenue(lines: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Lines left-joined to the catalogue on product, margin = quantity x (price - unit_cost);
    a product the catalogue lacks keeps its lines, under UNCATALOGUED with margin 0.00."""
    joined = lines[["product", "quantity", "price", "revenue"]].merge(
        catalogue, on="product", how="left", validate="many_to_one", indicator=True
    )
    if len(joined) != len(lines):  # cannot happen (many_to_one left join); checked anyway
        raise AssertionError("the catalogue join lost or repeated order lines")
    catalogued = joined["_merge"] == "both"
    joined["category"] = joined["category"].where(catalogued, UNCATALOGUED)
    found = joined[catalogued]
    joined["margin"] = _money([Decimal("0.00")] * len(joined), index=joined.index)
    # astype(object) makes the quantities Python ints, so the product is Python's exact *.
    joined.loc[catalogued, "margin"] = found["quantity"].astype(object) * (found["price"] - found["unit_cost"])
    _check_money(joined["margin"])
    return _group(joined, ["category"], revenue=("revenue", "sum"), margin=("margin", "sum"))


def fulfilment(lines: pd.DataFrame, shipments: pd.DataFrame, settings: WorkloadSettings) -> pd.DataFrame:
    """Every (order line, shipment) pair on the same order_id and product with
    order_ts <= ship_time <= order_ts + ship_within, grouped by the day of ship_time; the
    average comes from the exact integer sum of seconds (average_hours)."""
    pairs = lines[["order_id", "product", "order_ts"]].merge(
        shipments, on=["order_id", "product"], how="inner", validate="many_to_many"
    )
    within = pd.Timedelta(seconds=settings.ship_within_seconds).as_unit("s")
    pairs = pairs[(pairs["order_ts"] <= pairs["ship_time"]) & (pairs["ship_time"] <= pairs["order_ts"] + within)]
    pairs = pairs.assign(
        ship_date=pairs["ship_time"].dt.date, seconds=(pairs["ship_time"] - pairs["order_ts"]) // ONE_SECOND
    )
    sums = _group(pairs, ["ship_date"], shipped_lines=("seconds", "size"), total_seconds=("seconds", "sum"))
    averages = [
        average_hours(int(total), int(count)) for total, count in zip(sums["total_seconds"], sums["shipped_lines"])
    ]
    return sums.assign(avg_hours_to_ship=_money(averages, index=sums.index))


def average_hours(total_seconds: int, pairs: int) -> Decimal:
    """total_seconds / (3600 * pairs) rounded half-up to 2 places, in exact integer arithmetic:
    round_half_up(a / b) = floor((2a + b) / 2b) for a >= 0, b > 0, here in hundredths."""
    if type(total_seconds) is not int or type(pairs) is not int:
        raise AssertionError("average_hours takes Python ints")
    numerator, denominator = 100 * total_seconds, 3600 * pairs
    hundredths = (2 * numerator + denominator) // (2 * denominator)
    return Decimal(hundredths).scaleb(-2)


# ---------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------


def compute(input_dir, settings: WorkloadSettings = WorkloadSettings()) -> OracleResult:
    settings = settings.validated()
    sales_files(input_dir)  # fail early and clearly on a missing or empty input directory
    catalogue, shipments, not_applicable = _reference_inputs(input_dir)
    with decimal.localcontext(EXACT):
        lines, raw_lines, quarantine = read_valid_lines(input_dir)
        if raw_lines != len(lines) + sum(quarantine.values()):  # cannot happen; checked anyway
            raise AssertionError("raw lines != valid + quarantined")
        frames = {
            "city_revenue": city_revenue(lines),
            "daily_revenue": daily_revenue(lines),
            "product_sales": product_sales(lines),
            "hourly_sales": hourly_sales(lines),
            "window_revenue": window_revenue(lines, settings),
            "city_revenue_v1": city_revenue_v1(lines),
        }
        if catalogue is not None:
            frames["category_revenue"] = category_revenue(lines, catalogue)
        if shipments is not None:
            frames["fulfilment"] = fulfilment(lines, shipments, settings)
        results = {query: _rows(query, frames[query]) for query in QUERY_NAMES if query in frames}
    return OracleResult(
        raw_lines=raw_lines,
        valid_lines=len(lines),
        quarantine={reason: quarantine[reason] for reason in QUARANTINE_REASONS},
        results=results,
        not_applicable=not_applicable,
        order_time_range=None
        if lines.empty
        else (_plain(lines["order_ts"].min(), TIMESTAMP), _plain(lines["order_ts"].max(), TIMESTAMP)),
    )


def _reference_inputs(input_dir) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict[str, str]]:
    """The catalogue and the shipments (None when absent), and why the joined queries that
    lack theirs are not applicable."""
    not_applicable: dict[str, str] = {}
    products = catalogue_path(input_dir)
    catalogue = load_catalogue(products) if products.is_file() else None
    if catalogue is None:
        not_applicable["category_revenue"] = f"no product catalogue: {products} does not exist"
    files = shipment_files(input_dir)
    shipments = load_shipments(files) if files else None
    if shipments is None:
        not_applicable["fulfilment"] = (
            f"no shipments: {Path(input_dir) / 'shipments'} does not exist or holds no .csv file"
        )
    return catalogue, shipments, not_applicable


def _rows(query: str, frame: pd.DataFrame) -> list[dict]:
    """The rows of a query's result frame as dicts of plain Python values in the spec's
    column order, sorted by the key columns."""
    spec = QUERIES[query]
    kinds = [spec.types[column] for column in spec.columns]
    rows = [
        dict(zip(spec.columns, map(_plain, values, kinds)))
        for values in frame[spec.columns].itertuples(index=False, name=None)
    ]
    rows.sort(key=lambda row: tuple(row[column] for column in spec.key_columns))
    return rows


def _plain(value, kind: str):
    """value as the plain Python type of its column kind, or AssertionError: pandas hands
    out numpy integers and Timestamps, which are converted; anything else is a bug."""
    if kind == INTEGER and not isinstance(value, (bool, float)) and int(value) == value:
        return int(value)  # numpy.int64 / int32 -> int
    if kind == TIMESTAMP and isinstance(value, pd.Timestamp) and value.tzinfo is None and value.nanosecond == 0:
        return value.to_pydatetime()
    if (
        (kind == MONEY and type(value) is Decimal)
        or (kind == DATE and type(value) is dt.date)
        or (kind == STRING and type(value) is str)
    ):
        return value
    raise AssertionError(f"a {kind} column holds {value!r} of type {type(value).__name__}")


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
