"""The legacy build's own line parser: plain Python, one line at a time (RDD style).

Same rules as docs/data-rules.md; the legacy application predates the DataFrame
cleaning in shared/, as such applications do.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import NamedTuple

from shared.settings import HEADER

_QUANTITY = re.compile(r"[0-9]{1,9}")
_PRICE = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
_DATE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2})")
_STATE_ZIP = re.compile(r"([A-Z]{2}) ([0-9]{5})")
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
    """Split on commas outside double quotes; unwrap quoted fields; trim spaces."""
    fields, current, in_quotes = [], [], False
    for char in line:
        if char == '"':
            in_quotes = not in_quotes
        if char == "," and not in_quotes:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
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
    line = line.removeprefix(BYTE_ORDER_MARK)
    fields = split_fields(line)
    if all(f == "" for f in fields):
        return None, "blank"
    if tuple(fields) == HEADER:
        return None, "header"
    if line.count('"') % 2 or len(fields) != len(HEADER):
        return None, "field_count"
    if any(f == "" for f in fields):
        return None, "missing_field"
    order_id, product, quantity, price, date, address = fields
    if not _QUANTITY.fullmatch(quantity) or int(quantity) == 0:
        return None, "bad_quantity"
    if not _PRICE.fullmatch(price) or Decimal(price) == 0:
        return None, "bad_price"
    order_ts = _parse_date(date)
    if order_ts is None:
        return None, "bad_date"
    parts = address.split(", ")
    match = _STATE_ZIP.fullmatch(parts[2]) if len(parts) == 3 else None
    if match is None or not parts[0] or not parts[1]:
        return None, "bad_address"
    qty, unit = int(quantity), Decimal(price).quantize(Decimal("0.01"))
    return OrderLine(order_id, product, qty, unit, qty * unit, order_ts, parts[0], parts[1],
                     match.group(1), match.group(2)), None


def _parse_date(text: str) -> dt.datetime | None:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    month, day, year, hour, minute = (int(g) for g in match.groups())
    try:
        return dt.datetime(2000 + year, month, day, hour, minute)
    except ValueError:
        return None
