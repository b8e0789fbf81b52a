"""Deterministic generator of sales order lines shaped like the public 2019 sales export
of a US electronics store, plus the product catalogue and the shipments stream that the
joined queries need.

Output (the input-directory layout of docs/data-rules.md)::

    OUT/sales_0000.csv ...                 order lines, one header per file; name order = time order
    OUT/catalogue/products.csv             product,category,unit_cost,list_price
    OUT/shipments/shipments_0000.csv ...   order_id,product,ship_time,carrier
    OUT/_manifest.json                     options, summary, order-time range (written last)

This module is the generator itself: options and plan, the stream of records, the files.
What the data imitates (products, cities, streets, hours, carriers) is in
experiments/inputs/electronics_store.py, and what goes into `_manifest.json`, and how, in
experiments/inputs/manifest.py.

How the stream is built: a schedule hands out one order minute per record slot, days
walking forward with the real hour-of-day profile. Most slots hold ordinary order lines at
their scheduled minute, which moves a running-max "clock" forward. Quirk slots hold exact
duplicates, malformed lines, blank lines and repeated headers, and a few orders are placed
behind the clock: out of order (within the watermark) or late (beyond it).

Everything is streamed to disk: memory holds one day's per-minute slot counts, the order
being written and the shipments whose ship time has not been reached yet (at most ~96 h of
orders), so 10 million rows need no more memory than 10 thousand.

Only the standard library is used, and one seed drives every random choice, so the same
seed and options give byte-identical files. The watermark that separates out-of-order from
late lines is `GeneratorOptions.watermark_seconds`: its default is WorkloadSettings' (2 h),
and `lab generate` passes the watermark of WorkloadSettings.from_env(), the one the builds
will use (LAB_WATERMARK_SECONDS).
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import heapq
import itertools
import math
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, TextIO

from experiments.inputs.electronics_store import (
    CARRIERS,
    CITIES,
    COST_RATIO_BY_CATEGORY,
    FIRST_ORDER_ID,
    HOUR_WEIGHTS,
    ORDER_SIZE_WEIGHTS,
    PRODUCTS,
    STREET_NAMES,
    STREET_SUFFIXES,
    City,
)
from experiments.inputs.manifest import LINES_BY_KIND_KEY, is_generator_manifest, manifest_options, write_manifest
from shared.atomic import atomic_text, write_bytes_atomic
from shared.inputs import MANIFEST_FILE
from shared.settings import CATALOGUE_COLUMNS, HEADER, SHIPMENT_COLUMNS, WorkloadSettings

# manifest_options is the manifest's (experiments/inputs/manifest.py), importable from here too.
__all__ = ["GenerationSummary", "GeneratorOptions", "generate", "manifest_options"]

# --------------------------------------------------------------------------------------
# Generator constants
# --------------------------------------------------------------------------------------

ROWS_PER_FILE = 10_000
LINES_PER_DAY = 1_500
PROGRESS_EVERY = 10_000
MINUTES_PER_DAY = 24 * 60

OUT_OF_ORDER_MAX_LAG_MINUTES = 90
LATE_MAX_LAG_MINUTES = 24 * 60
# Out-of-order lines stay this far inside the watermark and late lines this far beyond
# it, so no build's rounding of "exactly at the watermark" decides their fate.
WATERMARK_GUARD_SECONDS = 5 * 60
MIN_WATERMARK_SECONDS = WATERMARK_GUARD_SECONDS + 60

SHIP_PROBABILITY = 0.9  # 10% of order lines never ship
SHIP_DELAY_SECONDS = (3600, 96 * 3600)  # some beyond the 72 h join bound, on purpose

# Dates are written with two-digit years read as 20yy.
FIRST_ALLOWED_DAY = dt.date(2000, 1, 1)
LAST_ALLOWED_DAY = dt.date(2099, 12, 31)

BAD_QUANTITIES = ("two", "0", "-1", "1.5")
BAD_PRICES = ("abc", "0", "12.345", "-5")
BAD_DATES = ("13/45/19 10:00", "2019-04-01 10:00", "02/29/19 10:00", "not a date")

BYTE_ORDER_MARK = "\ufeff"  # written by spreadsheet programs before a CSV file's first header
WRITE_BUFFER = 1 << 20  # sales and shipments files are written through a 1 MiB buffer
CENT = Decimal("0.01")
EPOCH = dt.datetime(1970, 1, 1)

# Kinds of sales lines. They are disjoint and add up to every physical line.
ON_TIME, OUT_OF_ORDER, LATE, DUPLICATE = "on_time", "out_of_order", "late", "duplicate"
FILE_HEADER, REPEATED_HEADER, BLANK = "header", "repeated_header", "blank"
NOT_UTF8, TOO_LONG = "not_utf8", "too_long"  # only in Windows-1252 and binary files (see GeneratorOptions)
MALFORMED_REASONS = ("field_count", "missing_field", "bad_quantity", "bad_price", "bad_date", "bad_address")
LINE_KINDS = (ON_TIME, OUT_OF_ORDER, LATE, DUPLICATE, FILE_HEADER, REPEATED_HEADER, BLANK, NOT_UTF8, TOO_LONG) + tuple(
    f"malformed:{reason}" for reason in MALFORMED_REASONS
)
VALID_KINDS = (ON_TIME, OUT_OF_ORDER, LATE, DUPLICATE)
# Quarantine reasons in the order docs/data-rules.md applies them.
QUARANTINE_REASONS = (NOT_UTF8, TOO_LONG, "blank", "header") + MALFORMED_REASONS
# Windows-1252 files: one on-time line in this many moves to San José (an accent: not UTF-8)
ACCENTED_EVERY = 10
ACCENTED_CITY = "San José, CA 95113"
RUNAWAY_FIELDS = 700  # a runaway line (no line ends for 700 fields: 5,600 characters, `too_long`)
BINARY_LINES = 40  # lines of a stray binary file, each holding 0xFF, which no UTF-8 text has

# What a record slot holds (out-of-order and late are decided per order, see _order_timing).
_ORDER_LINE, _MALFORMED = "order_line", "malformed"
_FRACTION_OPTIONS = (
    "out_of_order_fraction",
    "late_fraction",
    "duplicate_fraction",
    "malformed_fraction",
    "blank_fraction",
    "repeated_header_fraction",
)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorOptions:
    rows: int  # order-line records to emit (valid-looking + quirks); > 0
    seed: int = 7
    files: int | None = None  # sales CSV files; default max(1, ceil(rows / 10_000))
    start: str = "2019-01-01"  # first UTC day of order times
    days: int | None = None  # span; default so that about 1_500 lines fall on one day
    out_of_order_fraction: float = 0.02  # up to 90 min behind the running max, inside the watermark
    late_fraction: float = 0.0  # watermark + 5 min to 24 h (at least 2 x watermark) behind it
    duplicate_fraction: float = 0.005  # exact copy of the previous valid line, right after it
    malformed_fraction: float = 0.01  # lines that cannot be valid, every reason of data-rules.md
    blank_fraction: float = 0.002  # ",,,,,"
    repeated_header_fraction: float = 0.001  # header line repeated in the middle of a file
    catalogue: bool = True  # write catalogue/products.csv
    shipments: bool = True  # write shipments/*.csv
    # The builds' event-time watermark (WorkloadSettings.watermark_seconds; pass the one in use).
    watermark_seconds: int = WorkloadSettings().watermark_seconds
    # The first N sales files saved as a spreadsheet program saves them: a UTF-8 byte-order
    # mark, \r\n line ends and no line end after the last line (same lines, other bytes).
    spreadsheet_files: int = 0
    # The last N sales files saved in Windows-1252, as a spreadsheet program set to it saves
    # them: one on-time line in ACCENTED_EVERY moved to San José (its bytes are not UTF-8, so
    # it is a `not_utf8` line) and one runaway line after the header (`too_long`).
    windows_1252_files: int = 0
    # Stray files of random bytes named like sales files, one after each of N sales files
    # from file `binary_files_from` on (`sales_0000_stray.csv` after `sales_0000.csv` in name
    # order, so a stream meets it between sales files): BINARY_LINES lines, each `not_utf8`.
    binary_files: int = 0
    binary_files_from: int = 0


@dataclass
class GenerationSummary:
    """What `generate` wrote. Paths are absolute here; `to_json` makes them relative to
    `out_dir`, so the manifest does not depend on where the data lives."""

    out_dir: str
    sales_files: list[str] = field(default_factory=list)  # name order = time order
    sales_file_lines: list[int] = field(default_factory=list)  # physical lines per sales file
    shipment_files: list[str] = field(default_factory=list)
    catalogue_file: str | None = None
    manifest_file: str | None = None
    # Disjoint kinds of sales lines (see LINE_KINDS): they add up to raw_lines.
    lines_by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LINE_KINDS, 0))
    orders: int = 0  # distinct Order IDs on valid lines
    shipment_lines: int = 0
    catalogue_products: int = 0
    order_time_min: str | None = None  # ISO, UTC, over valid lines
    order_time_max: str | None = None

    @property
    def raw_lines(self) -> int:
        return sum(self.lines_by_kind.values())

    @property
    def valid_lines(self) -> int:
        return sum(self.lines_by_kind[kind] for kind in VALID_KINDS)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        """Counts per quarantine reason of docs/data-rules.md (each file's header included)."""
        kinds = self.lines_by_kind
        by_reason = {
            NOT_UTF8: kinds[NOT_UTF8],
            TOO_LONG: kinds[TOO_LONG],
            "blank": kinds[BLANK],
            "header": kinds[FILE_HEADER] + kinds[REPEATED_HEADER],
        }
        by_reason.update({reason: kinds[f"malformed:{reason}"] for reason in MALFORMED_REASONS})
        return by_reason

    @property
    def quarantined_lines(self) -> int:
        return sum(self.quarantined_by_reason.values())

    def to_json(self) -> dict:
        def relative(path: str | None) -> str | None:
            return None if path is None else Path(path).relative_to(self.out_dir).as_posix()

        return {
            "sales_files": [relative(path) for path in self.sales_files],
            "sales_file_lines": list(self.sales_file_lines),
            "shipment_files": [relative(path) for path in self.shipment_files],
            "catalogue_file": relative(self.catalogue_file),
            "manifest_file": relative(self.manifest_file),
            LINES_BY_KIND_KEY: dict(self.lines_by_kind),
            "raw_lines": self.raw_lines,
            "valid_lines": self.valid_lines,
            "quarantined_lines": self.quarantined_lines,
            "quarantined_by_reason": self.quarantined_by_reason,
            "orders": self.orders,
            "shipment_lines": self.shipment_lines,
            "catalogue_products": self.catalogue_products,
            "order_time_min": self.order_time_min,
            "order_time_max": self.order_time_max,
        }


def generate(
    out_dir: str | os.PathLike,
    options: GeneratorOptions,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """Write a generated dataset to `out_dir` and return what was written.

    `out_dir` must not exist, be empty, or hold only a complete previous output of this
    generator (recognised by its `_manifest.json`); such a previous output is deleted and
    replaced. Anything else raises ValueError before a single file is touched, as do
    invalid options. `progress(done_rows, total_rows)` is called every 10_000 rows and once
    at the end. Every file appears atomically (written under a hidden temporary name in the
    same folder, then renamed) and the manifest is written last.
    """
    plan = _plan(options)
    out = Path(out_dir).absolute()
    _prepare_out_dir(out)

    seeds = random.Random(options.seed)
    # Independent streams, so e.g. turning shipments off does not change the sales lines.
    schedule_rng, sales_rng, shipment_rng = (random.Random(seeds.getrandbits(64)) for _ in range(3))
    slot_minutes = _slot_minutes(schedule_rng, plan)
    sales = _SalesStream(sales_rng, plan)
    shipments = _ShipmentBook(shipment_rng) if options.shipments else None
    summary = GenerationSummary(out_dir=str(out))

    if options.catalogue:
        summary.catalogue_file = str(_write_catalogue(out / "catalogue" / "products.csv"))
        summary.catalogue_products = len(PRODUCTS)
    if shipments:
        (out / "shipments").mkdir()

    # their own stream, so asking for them changes no other line
    poison_rng = random.Random(seeds.getrandbits(64))
    width = max(4, len(str(plan.files - 1)))
    done = 0
    for index, (first_slot, end_slot) in enumerate(_file_slices(plan)):
        sales_path = out / f"sales_{index:0{width}d}.csv"
        windows_1252 = index >= plan.files - options.windows_1252_files
        with atomic_text(sales_path, buffering=WRITE_BUFFER, encoding="cp1252" if windows_1252 else "utf-8") as handle:
            writer = _sales_writer(handle, spreadsheet=index < options.spreadsheet_files)
            writer.writerow(HEADER)
            summary.lines_by_kind[FILE_HEADER] += 1
            if windows_1252:
                writer.writerow(["runaway"] * RUNAWAY_FIELDS)
                summary.lines_by_kind[TOO_LONG] += 1
            sales.start_file()
            for _ in range(first_slot, end_slot):
                record = sales.next_record(next(slot_minutes))
                if windows_1252 and record.kind == ON_TIME and poison_rng.randrange(ACCENTED_EVERY) == 0:
                    street = record.fields[5].split(", ", 1)[0]
                    record = _Record(NOT_UTF8, [*record.fields[:5], f"{street}, {ACCENTED_CITY}"])
                writer.writerow(record.fields)
                summary.lines_by_kind[record.kind] += 1
                if shipments and record.shipment:
                    shipments.consider(*record.shipment)
                done += 1
                if progress and (done % PROGRESS_EVERY == 0 or done == plan.rows):
                    progress(done, plan.rows)
        summary.sales_files.append(str(sales_path))
        summary.sales_file_lines.append(1 + windows_1252 + end_slot - first_slot)
        if 0 <= index - options.binary_files_from < options.binary_files:  # sorts right after this sales file
            stray_path = out / f"sales_{index:0{width}d}_stray.csv"
            _write_binary(stray_path, poison_rng)
            summary.sales_files.append(str(stray_path))
            summary.sales_file_lines.append(BINARY_LINES)
            summary.lines_by_kind[NOT_UTF8] += BINARY_LINES

        if shipments:
            # Shipments file k covers the same time slice as sales file k; the last takes the rest.
            is_last = index == plan.files - 1
            due_until = None if is_last else _slice_end_second(sales)
            shipment_path = out / "shipments" / f"shipments_{index:0{width}d}.csv"
            shipments.write_due(shipment_path, due_until)
            summary.shipment_files.append(str(shipment_path))

    summary.orders = sales.orders
    summary.shipment_lines = shipments.written if shipments else 0
    if sales.clock is not None:
        assert sales.earliest is not None  # set together with clock
        summary.order_time_min = _iso_utc(sales.earliest)
        summary.order_time_max = _iso_utc(sales.clock)
    summary.manifest_file = str(out / MANIFEST_FILE)
    write_manifest(
        out / MANIFEST_FILE,
        options,
        resolved=plan.to_json(),
        order_time_range=(summary.order_time_min, summary.order_time_max),
        summary=summary.to_json(),
    )
    return summary


# --------------------------------------------------------------------------------------
# Options -> plan
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Validated options with every default resolved."""

    rows: int
    files: int
    first_day: dt.date
    days: int
    start_minute: int  # epoch minute of the first day's 00:00 UTC
    slot_kind_weights: tuple[tuple[str, float], ...]
    out_of_order_per_order: float  # probability that a new order is placed behind the clock
    late_per_order: float
    out_of_order_lag_minutes: tuple[int, int]
    late_lag_minutes: tuple[int, int]

    def to_json(self) -> dict:
        """What the manifest records of the plan (its `resolved` values)."""
        return {
            "files": self.files,
            "days": self.days,
            "first_day": self.first_day.isoformat(),
            "last_day": (self.first_day + dt.timedelta(days=self.days - 1)).isoformat(),
            "out_of_order_lag_minutes": list(self.out_of_order_lag_minutes),
            "late_lag_minutes": list(self.late_lag_minutes),
        }


def _plan(options: GeneratorOptions) -> _Plan:
    rows = _require_int("rows", options.rows, minimum=1)
    _require_int("seed", options.seed)
    for name in _FRACTION_OPTIONS:
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    quirk_total = sum(getattr(options, name) for name in _FRACTION_OPTIONS)
    if quirk_total >= 0.5:
        raise ValueError(
            f"the quirk fractions add up to {quirk_total:g}; keep their sum below 0.5 "
            "so that most lines are ordinary order lines"
        )

    files = max(1, math.ceil(rows / ROWS_PER_FILE)) if options.files is None else options.files
    _require_int("files", files, minimum=1)
    if files > rows:
        raise ValueError(f"files ({files}) cannot exceed rows ({rows}): every file needs at least one line")
    spreadsheet_files = _require_int("spreadsheet_files", options.spreadsheet_files, minimum=0)
    windows_1252_files = _require_int("windows_1252_files", options.windows_1252_files, minimum=0)
    if (
        _require_int("binary_files", options.binary_files, minimum=0)
        + _require_int("binary_files_from", options.binary_files_from, minimum=0)
        > files
    ):
        raise ValueError(
            f"binary_files ({options.binary_files}) from sales file {options.binary_files_from} "
            f"go past the sales files ({files})"
        )
    if spreadsheet_files + windows_1252_files > files:
        raise ValueError(
            f"spreadsheet_files ({spreadsheet_files}) and windows_1252_files ({windows_1252_files}) "
            f"are {spreadsheet_files + windows_1252_files} of the sales files; there are {files}"
        )

    first_day = _parse_day(options.start)
    days = max(1, round(rows / LINES_PER_DAY)) if options.days is None else options.days
    _require_int("days", days, minimum=1)
    last_day = first_day + dt.timedelta(days=days - 1)
    if first_day < FIRST_ALLOWED_DAY or last_day > LAST_ALLOWED_DAY:
        raise ValueError(
            f"order dates {first_day} to {last_day} do not fit the two-digit years of MM/dd/yy "
            f"(read as 20yy): keep them within {FIRST_ALLOWED_DAY} to {LAST_ALLOWED_DAY}"
        )

    watermark = _require_int("watermark_seconds", options.watermark_seconds, minimum=MIN_WATERMARK_SECONDS)
    order_line_share = 1 - sum(
        getattr(options, name)
        for name in ("duplicate_fraction", "malformed_fraction", "blank_fraction", "repeated_header_fraction")
    )
    return _Plan(
        rows=rows,
        files=files,
        first_day=first_day,
        days=days,
        start_minute=_epoch_minute(first_day),
        slot_kind_weights=(
            (DUPLICATE, options.duplicate_fraction),
            (_MALFORMED, options.malformed_fraction),
            (BLANK, options.blank_fraction),
            (REPEATED_HEADER, options.repeated_header_fraction),
            (_ORDER_LINE, order_line_share),
        ),
        # Out-of-order and late are drawn per order among the order-line slots, so scale the
        # line fractions up to that share (an order's size does not matter: its lines all lag).
        out_of_order_per_order=options.out_of_order_fraction / order_line_share,
        late_per_order=options.late_fraction / order_line_share,
        out_of_order_lag_minutes=(1, min(OUT_OF_ORDER_MAX_LAG_MINUTES, (watermark - WATERMARK_GUARD_SECONDS) // 60)),
        late_lag_minutes=(
            _ceil_div(watermark + WATERMARK_GUARD_SECONDS, 60),
            max(LATE_MAX_LAG_MINUTES, _ceil_div(2 * watermark, 60)),
        ),
    )


def _require_int(name: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"start must be a day written YYYY-MM-DD, got {text!r}") from None


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _file_slices(plan: _Plan) -> Iterator[tuple[int, int]]:
    """Contiguous, near-equal ranges of record slots, one per sales file."""
    for index in range(plan.files):
        yield index * plan.rows // plan.files, (index + 1) * plan.rows // plan.files


# --------------------------------------------------------------------------------------
# Random helpers and time formatting
# --------------------------------------------------------------------------------------


class _Weighted:
    """Picks items by relative weight with one random() call (bisect over cumulative sums);
    an item of weight 0 is never picked."""

    def __init__(self, weighted_items: Sequence[tuple[object, float]]):
        self.items = [item for item, _ in weighted_items]
        self.cumulative = list(itertools.accumulate(weight for _, weight in weighted_items))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random):
        index = bisect.bisect_right(self.cumulative, rng.random() * self.total)
        return self.items[min(index, len(self.items) - 1)]  # guard against float rounding at 1.0


PRODUCT_INDEX = _Weighted([(index, product.popularity) for index, product in enumerate(PRODUCTS)])
QUANTITY_BY_PRODUCT = [
    _Weighted([(quantity, weight) for quantity, weight in enumerate(product.quantity_weights, start=1)])
    for product in PRODUCTS
]
CITY = _Weighted([(city, city.popularity) for city in CITIES])
STREET_SUFFIX = _Weighted(STREET_SUFFIXES)
ORDER_SIZE = _Weighted(ORDER_SIZE_WEIGHTS)
CARRIER = _Weighted(CARRIERS)
MINUTE_OF_DAY = _Weighted([(minute, HOUR_WEIGHTS[minute // 60]) for minute in range(MINUTES_PER_DAY)])


def _epoch_minute(day: dt.date) -> int:
    return (dt.datetime.combine(day, dt.time()) - EPOCH) // dt.timedelta(minutes=1)


@lru_cache(maxsize=4096)  # consecutive lines mostly share a minute
def _order_date_text(minute: int) -> str:
    return (EPOCH + dt.timedelta(minutes=minute)).strftime("%m/%d/%y %H:%M")


def _ship_time_text(second: int) -> str:
    return (EPOCH + dt.timedelta(seconds=second)).strftime("%Y-%m-%d %H:%M:%S")


def _iso_utc(minute: int) -> str:
    return (EPOCH + dt.timedelta(minutes=minute)).replace(tzinfo=dt.UTC).isoformat()


def _slot_minutes(rng: random.Random, plan: _Plan) -> Iterator[int]:
    """Yield the scheduled order minute of every record slot, in time order.

    Slots are shared out evenly over the days; each slot of a day draws its minute from the
    hour-of-day profile. Only the day's 1440 per-minute counters are kept, never the slots.
    """
    for day in range(plan.days):
        slots = (day + 1) * plan.rows // plan.days - day * plan.rows // plan.days
        per_minute = [0] * MINUTES_PER_DAY
        for _ in range(slots):
            per_minute[MINUTE_OF_DAY.pick(rng)] += 1
        day_start = plan.start_minute + day * MINUTES_PER_DAY
        for minute, count in enumerate(per_minute):
            for _ in range(count):
                yield day_start + minute


# --------------------------------------------------------------------------------------
# Sales lines
# --------------------------------------------------------------------------------------


class _Record(NamedTuple):
    kind: str  # one of LINE_KINDS
    fields: list[str]  # CSV fields as written
    shipment: tuple[int, int, int] | None = None  # (order minute, order id, product index) of a new valid line


@dataclass
class _Order:
    order_id: int
    minute: int
    kind: str  # ON_TIME, OUT_OF_ORDER or LATE: all its lines share it
    address: str
    lines_left: list[tuple[int, int]]  # (product index, quantity), popped from the end


class _SalesStream:
    """Turns record slots into sales lines, keeping the running-max clock and the Order IDs."""

    def __init__(self, rng: random.Random, plan: _Plan):
        self.rng = rng
        self.plan = plan
        self.slot_kind = _Weighted(plan.slot_kind_weights)
        self.next_order_id = FIRST_ORDER_ID
        self.orders = 0
        self.clock: int | None = None  # running max order minute of the valid lines so far
        self.earliest: int | None = None  # min order minute of the valid lines so far
        self.order: _Order | None = None  # the order whose lines are being written
        self.previous_valid: list[str] | None = None  # fields of the previous line, if it was valid
        self.malformers = {
            "field_count": self._wrong_field_count,
            "missing_field": self._missing_field,
            "bad_quantity": lambda fields, _: self._replace(fields, 2, BAD_QUANTITIES),
            "bad_price": lambda fields, _: self._replace(fields, 3, BAD_PRICES),
            "bad_date": lambda fields, _: self._replace(fields, 4, BAD_DATES),
            "bad_address": self._bad_address,
        }

    def start_file(self) -> None:
        self.previous_valid = None  # a duplicate sits right after its original, in the same file

    def next_record(self, slot_minute: int) -> _Record:
        kind = self.slot_kind.pick(self.rng)
        if kind == _ORDER_LINE or (kind == DUPLICATE and self.previous_valid is None):
            return self._order_line(slot_minute)
        if kind == DUPLICATE:
            assert self.previous_valid is not None  # else an order line, above
            return _Record(DUPLICATE, self.previous_valid)
        self.previous_valid = None
        if kind == _MALFORMED:
            return self._malformed_line(slot_minute)
        if kind == BLANK:
            return _Record(BLANK, [""] * len(HEADER))
        return _Record(REPEATED_HEADER, list(HEADER))

    # -- valid lines ---------------------------------------------------------------------

    def _order_line(self, slot_minute: int) -> _Record:
        if self.order is None or not self.order.lines_left:
            self.order = self._new_order(slot_minute)
        order = self.order
        product_index, quantity = order.lines_left.pop()
        product = PRODUCTS[product_index]
        fields = [
            str(order.order_id),
            product.name,
            str(quantity),
            product.price,
            _order_date_text(order.minute),
            order.address,
        ]
        self.previous_valid = fields
        return _Record(order.kind, fields, (order.minute, order.order_id, product_index))

    def _new_order(self, slot_minute: int) -> _Order:
        kind, minute = self._order_timing(slot_minute)
        self.clock = minute if self.clock is None else max(self.clock, minute)
        self.earliest = minute if self.earliest is None else min(self.earliest, minute)
        order_id = self.next_order_id
        self.next_order_id += 1
        self.orders += 1
        products = self._distinct_products(ORDER_SIZE.pick(self.rng))
        lines = [(index, QUANTITY_BY_PRODUCT[index].pick(self.rng)) for index in products]
        lines.reverse()  # popped from the end, so lines come out in drawing order
        return _Order(order_id, minute, kind, self._address(), lines)

    def _order_timing(self, slot_minute: int) -> tuple[str, int]:
        """On time at the slot's minute, or placed behind the clock (out of order or late)."""
        draw = self.rng.random()
        out_of_order, late = self.plan.out_of_order_per_order, self.plan.late_per_order
        if draw < out_of_order:
            minute = self._behind_clock(self.plan.out_of_order_lag_minutes)
            if minute is not None:
                return OUT_OF_ORDER, minute
        elif draw < out_of_order + late:
            minute = self._behind_clock(self.plan.late_lag_minutes)
            if minute is not None:
                return LATE, minute
        return ON_TIME, slot_minute  # slot minutes never go backwards, so this is >= the clock

    def _behind_clock(self, lag_minutes: tuple[int, int]) -> int | None:
        """A minute within lag_minutes behind the clock, never before the first day; None
        while the clock is not far enough from the first day for that lag."""
        if self.clock is None:
            return None
        shortest, longest = lag_minutes
        room = self.clock - self.plan.start_minute
        if room < shortest:
            return None
        return self.clock - self.rng.randint(shortest, min(longest, room))

    def _distinct_products(self, count: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < count:
            index = PRODUCT_INDEX.pick(self.rng)
            if index not in chosen:
                chosen.append(index)
        return chosen

    def _address_parts(self) -> tuple[str, City]:
        street = f"{self.rng.randint(1, 999)} {self.rng.choice(STREET_NAMES)} {STREET_SUFFIX.pick(self.rng)}"
        return street, CITY.pick(self.rng)

    def _address(self) -> str:
        street, city = self._address_parts()
        return f"{street}, {city.name}, {city.state} {city.zip}"

    # -- malformed lines -----------------------------------------------------------------

    def _malformed_line(self, slot_minute: int) -> _Record:
        """A plausible line with exactly one defect, so its quarantine reason is that defect.
        It reuses the next Order ID rather than consuming one."""
        reason = self.rng.choice(MALFORMED_REASONS)
        product_index = PRODUCT_INDEX.pick(self.rng)
        product = PRODUCTS[product_index]
        street, city = self._address_parts()
        fields = [
            str(self.next_order_id),
            product.name,
            str(QUANTITY_BY_PRODUCT[product_index].pick(self.rng)),
            product.price,
            _order_date_text(slot_minute),
            f"{street}, {city.name}, {city.state} {city.zip}",
        ]
        return _Record(f"malformed:{reason}", self.malformers[reason](fields, (street, city)))

    def _replace(self, fields: list[str], position: int, bad_values: Sequence[str]) -> list[str]:
        fields[position] = self.rng.choice(bad_values)
        return fields

    def _wrong_field_count(self, fields: list[str], _address) -> list[str]:
        if self.rng.random() < 0.5:
            del fields[self.rng.randrange(len(fields))]  # 5 fields
        else:
            fields.append("")  # 7 fields: a stray trailing comma
        return fields

    def _missing_field(self, fields: list[str], _address) -> list[str]:
        fields[self.rng.randrange(len(fields))] = self.rng.choice(("", "  "))  # empty after trimming
        return fields

    def _bad_address(self, fields: list[str], address: tuple[str, City]) -> list[str]:
        street, city = address
        fields[5] = self.rng.choice(
            (
                f"{street} {city.name} {city.state} {city.zip}",  # no commas
                f"{street}, {city.name}",  # no state and zip
                f"{street}, {city.name}, {city.state_name}",  # state spelt out, no zip
            )
        )
        return fields


def _slice_end_second(sales: _SalesStream) -> int | None:
    """End of the order-time slice covered so far (the clock), in epoch seconds."""
    return None if sales.clock is None else sales.clock * 60


def _write_binary(path: Path, rng: random.Random) -> None:
    """A stray binary file: BINARY_LINES lines of random bytes (no line ends in them), each
    with a 0xFF somewhere, which no UTF-8 text holds; every line ends with \n."""
    lines = []
    for _ in range(BINARY_LINES):
        data = bytearray(b for b in rng.randbytes(rng.randint(8, 200)) if b not in b"\r\n")
        data.insert(rng.randint(0, len(data)), 0xFF)
        lines.append(bytes(data) + b"\n")
    write_bytes_atomic(path, b"".join(lines))


def _sales_writer(handle: TextIO, spreadsheet: bool):
    """Something with csv's writerow for one sales file: a plain csv writer ending every row
    with \n, or, for a spreadsheet-style file, _SpreadsheetRows."""
    return _SpreadsheetRows(handle) if spreadsheet else csv.writer(handle, lineterminator="\n")


class _SpreadsheetRows:
    """csv rows as a spreadsheet program saves them: a UTF-8 byte-order mark first, \r\n
    between rows and no line end after the last one. The raw lines are the same as in a
    plain file (docs/data-rules.md: the mark is not part of the first field)."""

    def __init__(self, handle: TextIO):
        handle.write(BYTE_ORDER_MARK)
        self.handle = handle
        self.rows = csv.writer(handle, lineterminator="")  # the line end goes before the next row
        self.first = True

    def writerow(self, fields) -> None:
        if not self.first:
            self.handle.write("\r\n")
        self.first = False
        self.rows.writerow(fields)


# --------------------------------------------------------------------------------------
# Shipments and catalogue
# --------------------------------------------------------------------------------------


class _ShipmentBook:
    """Shipments not yet written, in a heap by ship time. A shipment is due in the first
    shipments file whose time slice reaches its ship time, so the heap only ever holds
    about 96 h of orders (plus one file's slice)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pending: list[tuple[int, int, int, str]] = []  # (ship second, order id, product index, carrier)
        self.written = 0

    def consider(self, order_minute: int, order_id: int, product_index: int) -> None:
        if self.rng.random() >= SHIP_PROBABILITY:
            return
        ship_second = order_minute * 60 + self.rng.randint(*SHIP_DELAY_SECONDS)
        heapq.heappush(self.pending, (ship_second, order_id, product_index, CARRIER.pick(self.rng)))

    def write_due(self, path: Path, until_second: int | None) -> None:
        """Write the shipments due by until_second (None: all that are left), by ship time."""
        with atomic_text(path, buffering=WRITE_BUFFER) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(SHIPMENT_COLUMNS)
            while self.pending and (until_second is None or self.pending[0][0] <= until_second):
                ship_second, order_id, product_index, carrier = heapq.heappop(self.pending)
                writer.writerow((order_id, PRODUCTS[product_index].name, _ship_time_text(ship_second), carrier))
                self.written += 1


def _write_catalogue(path: Path) -> Path:
    path.parent.mkdir()
    with atomic_text(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CATALOGUE_COLUMNS)
        for product in PRODUCTS:
            list_price = Decimal(product.price).quantize(CENT)
            unit_cost = (list_price * COST_RATIO_BY_CATEGORY[product.category]).quantize(CENT, ROUND_HALF_UP)
            writer.writerow((product.name, product.category, str(unit_cost), str(list_price)))
    return path


# --------------------------------------------------------------------------------------
# Files and the output directory
# --------------------------------------------------------------------------------------

# Names a previous output may hold (temporary files of an interrupted run included).
_OUTPUT_NAMES = {
    None: re.compile(r"sales_\d{4,}(_stray)?\.csv|_manifest\.json|\..+\.tmp"),  # _stray: the binary files
    "catalogue": re.compile(r"products\.csv|\..+\.tmp"),
    "shipments": re.compile(r"shipments_\d{4,}\.csv|\..+\.tmp"),
}


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory")
    if not out.exists():
        out.mkdir(parents=True)
        return
    if not any(out.iterdir()):
        return
    if not _is_previous_output(out):
        raise ValueError(
            f"output directory {out} is not empty and does not hold a complete previous "
            "generator output (no generator _manifest.json, or other files): choose another "
            "directory or empty it"
        )
    _remove_previous_output(out)


def _is_previous_output(out: Path) -> bool:
    if not is_generator_manifest(out / MANIFEST_FILE):
        return False
    for entry in out.iterdir():
        if entry.name in _OUTPUT_NAMES and entry.is_dir() and not entry.is_symlink():
            pattern = _OUTPUT_NAMES[entry.name]
            if not all(child.is_file() and pattern.fullmatch(child.name) for child in entry.iterdir()):
                return False
        elif not (entry.is_file() and not entry.is_symlink() and _OUTPUT_NAMES[None].fullmatch(entry.name)):
            return False
    return True


def _remove_previous_output(out: Path) -> None:
    # The manifest goes last: if this is interrupted, the folder is still recognised.
    for entry in sorted(out.iterdir()):
        if entry.is_dir():
            for child in entry.iterdir():
                child.unlink()
            entry.rmdir()
        elif entry.name != MANIFEST_FILE:
            entry.unlink()
    (out / MANIFEST_FILE).unlink()
