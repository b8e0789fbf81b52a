"""The legacy build's own line parser: plain Python, one line at a time (RDD style).

Same rules as docs/data-rules.md; the legacy application predates the DataFrame
cleaning in shared/, as such applications do.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import NamedTuple

from shared.raw_lines import encoding_reason
from shared.settings import HEADER, SHIPMENT_COLUMNS

_QUANTITY = re.compile(r"[0-9]{1,9}")
_PRICE = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
_DATE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2})")
_STATE_ZIP = re.compile(r"([A-Z]{2}) ([0-9]{5})")
# Five fields without quotes or commas, then a quoted address without inner quotes: the
# shape of nearly every line, split here by one regex (split_fields gives the same fields).
_SIMPLE_LINE = re.compile(r'([^",]*),([^",]*),([^",]*),([^",]*),([^",]*),"([^"]*)"')
_CENT, _ZERO = Decimal("0.01"), Decimal(0)
BYTE_ORDER_MARK = "\ufeff"  # as spreadsheet programs write it before a file's first header


class OrderLine(NamedTuple):
    order_id: str
    product: str
    quantity: int
    price: Decimal
    revenue: Decimal
    order_ts: dt.datetime  # naive, UTC
    street: str
    city: str
    state: str
    zip: str


def split_fields(line: str) -> list[str]:
    """Split on commas outside double quotes; unwrap quoted fields; trim spaces.

    Each `"` toggles "inside quotes" and stays in its field (until `_unwrap`), so after
    `line.split('"')` the even-numbered pieces are outside quotes and their commas split
    fields; the odd ones are inside and their commas are text. Same result as walking the
    line one character at a time, in a few C-level string calls instead.
    """
    if '"' not in line:
        return [f.strip(" ") for f in line.split(",")]
    fields: list[str] = []
    current = ""
    for index, piece in enumerate(line.split('"')):
        if index:
            current += '"'
        if index % 2:
            current += piece
        else:
            head, *rest = piece.split(",")
            current += head
            for part in rest:
                fields.append(current)
                current = part
    fields.append(current)
    return [_unwrap(f).strip(" ") for f in fields]


def _unwrap(field: str) -> str:
    if len(field) >= 2 and field[0] == '"' and field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field


def parse_line(line: str) -> tuple[OrderLine | None, str | None]:
    """(order line, None) for a valid line, else (None, quarantine reason)."""
    # A leading byte-order mark is not part of the first field (docs/data-rules.md). Hadoop's
    # reader skips one at the start of a file; a line cannot tell if it opened a file, so one
    # is dropped wherever a line starts with it.
    reason = encoding_reason(line)  # before any split: no regex over megabytes
    if reason:
        return None, reason
    line = line.removeprefix(BYTE_ORDER_MARK)
    simple = _SIMPLE_LINE.fullmatch(line)  # the usual shape: split_fields would give the same
    fields = [f.strip(" ") for f in simple.groups()] if simple else split_fields(line)
    if all(f == "" for f in fields):
        return None, "blank"
    if tuple(fields) == HEADER:
        return None, "header"
    if line.count('"') % 2 or len(fields) != len(HEADER):
        return None, "field_count"
    if any(f == "" for f in fields):
        return None, "missing_field"
    order_id, product, quantity, price, date, address = fields
    qty = int(quantity) if _QUANTITY.fullmatch(quantity) else 0
    if not qty:
        return None, "bad_quantity"
    unit = Decimal(price) if _PRICE.fullmatch(price) else _ZERO
    if not unit:
        return None, "bad_price"
    order_ts = _parse_date(date)
    if order_ts is None:
        return None, "bad_date"
    parts = address.split(", ")
    match = _STATE_ZIP.fullmatch(parts[2]) if len(parts) == 3 else None
    if match is None or not parts[0] or not parts[1]:
        return None, "bad_address"
    unit = unit.quantize(_CENT)
    return OrderLine(
        order_id, product, qty, unit, qty * unit, order_ts, parts[0], parts[1], match.group(1), match.group(2)
    ), None


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[OrderLine | None, str | None]]:
    """parse_line over an iterable (one RDD partition): one Python call per partition."""
    parse = parse_line
    for line in lines:
        yield parse(line)


def _parse_date(text: str) -> dt.datetime | None:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    month, day, year, hour, minute = match.groups()
    try:
        return dt.datetime(2000 + int(year), int(month), int(day), int(hour), int(minute))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------
# Shipments: a reference input, so a bad line is an error, not quarantine
# ---------------------------------------------------------------------------------------

_SHIP_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
SHIPMENT_HEADER = ",".join(SHIPMENT_COLUMNS)


class Shipment(NamedTuple):
    order_id: str
    product: str
    ship_ts: dt.datetime  # naive, UTC


class BadShipmentLine(ValueError):
    pass


def parse_shipment(line: str) -> Shipment | None:
    """One line of shipments/*.csv (order_id, product, ship_time, carrier); None for the
    header and blank lines."""
    line = line.removeprefix(BYTE_ORDER_MARK).rstrip("\r")
    if not line.strip() or line.strip() == SHIPMENT_HEADER:
        return None
    fields = split_fields(line)
    if len(fields) != len(SHIPMENT_COLUMNS) or not fields[0] or not fields[1]:
        raise BadShipmentLine(f"not a shipment line: {line!r}")
    match = _SHIP_TIME.fullmatch(fields[2])
    ship_ts: dt.datetime | None = None
    try:
        if match:  # named, not *-spread: a spread could reach datetime's tzinfo
            year, month, day, hour, minute, second = (int(part) for part in match.groups())
            ship_ts = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        ship_ts = None
    if ship_ts is None:
        raise BadShipmentLine(f"ship_time {fields[2]!r} is not a real YYYY-MM-DD HH:MM:SS time: {line!r}")
    return Shipment(fields[0], fields[1], ship_ts)


def parse_shipments(lines: Iterable[str]) -> Iterator[Shipment]:
    for line in lines:
        shipment = parse_shipment(line)
        if shipment is not None:
            yield shipment
