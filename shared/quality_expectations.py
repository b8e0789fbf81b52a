"""What the input folder says valid order lines must agree with: the quality gate's expectations.

The catalogue's list prices and the generator's order-time range (from its manifest) are
read here, once per build, into a `QualityExpectations`; the suite (shared/quality_checks.py)
turns them into checks, and skips the checks whose source the input lacks.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from shared.inputs import MANIFEST_FILE, MANIFEST_ORDER_TIME_RANGE
from shared.settings import CATALOGUE_COLUMNS

CATALOGUE_FILE = Path("catalogue") / "products.csv"
_LIST_PRICE = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")  # the same amounts cleaning accepts


@dataclass(frozen=True)
class QualityExpectations:
    """What the input itself says valid lines must agree with."""

    catalogue_prices: dict[str, Decimal] | None = None  # product -> list price
    earliest: dt.datetime | None = None  # order times lie in [earliest, latest] (naive UTC)
    latest: dt.datetime | None = None


def expectations_from_input(input_dir) -> QualityExpectations:
    """The catalogue's list prices and the manifest's order-time range, when present."""
    root = Path(input_dir)
    catalogue = root / CATALOGUE_FILE
    manifest = root / MANIFEST_FILE
    earliest, latest = _order_time_range(manifest) if manifest.is_file() else (None, None)
    return QualityExpectations(
        catalogue_prices=_list_prices(catalogue) if catalogue.is_file() else None,
        earliest=earliest,
        latest=latest,
    )


def _list_prices(path: Path) -> dict[str, Decimal]:
    prices: dict[str, Decimal] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != CATALOGUE_COLUMNS:
            raise ValueError(f"{path}, line 1: the header must be {','.join(CATALOGUE_COLUMNS)}, got {header!r}")
        for fields in reader:
            product, price = _catalogue_row(path, reader.line_num, fields)
            if product in prices:
                raise ValueError(f"{path}, line {reader.line_num}: product {product!r} is listed twice")
            prices[product] = price
    return prices


def _catalogue_row(path: Path, line_number: int, fields: list[str]) -> tuple[str, Decimal]:
    if len(fields) != len(CATALOGUE_COLUMNS):
        raise ValueError(f"{path}, line {line_number}: {len(fields)} fields instead of {len(CATALOGUE_COLUMNS)}")
    row = dict(zip(CATALOGUE_COLUMNS, (f.strip() for f in fields)))
    if not _LIST_PRICE.fullmatch(row["list_price"]):
        raise ValueError(f"{path}, line {line_number}: list_price {row['list_price']!r} is not a decimal amount")
    return row["product"], Decimal(row["list_price"])


def _order_time_range(path: Path) -> tuple[dt.datetime | None, dt.datetime | None]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON manifest: {error}") from None
    span = manifest.get(MANIFEST_ORDER_TIME_RANGE) if isinstance(manifest, dict) else None
    if not isinstance(span, dict):
        return None, None
    return _naive_utc_from_iso(path, span.get("min")), _naive_utc_from_iso(path, span.get("max"))


def _naive_utc_from_iso(path: Path, text) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return naive_utc(dt.datetime.fromisoformat(text))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: order_time_range value {text!r} is not an ISO time") from None


def naive_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """Order lines carry naive UTC wall-clock times; compare like with like."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)
