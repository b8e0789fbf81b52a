"""The replayer's stream: an input directory's raw lines, numbered and in emission order.

Sequence numbers: `seq` always means the global line sequence (line i of the emitted
stream), whichever target the replayer writes to; a unit's first_seq..last_seq is the line
range it carries, so a result that records the highest seq it includes can be matched to
the units it covers.

Order (`order`): "file" (the default) emits the files in name order, each file's lines as
they are, so line i of the stream is line i of the input read in name order. "event-time"
emits every line sorted by its Order Date (see `event_time_order`): for an input whose file
names are not in time order (monthly exports named April, August, December, ...), which
would put most lines behind an event-time build's watermark.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from shared import raw_lines as shared_raw_lines
from shared.inputs import inspect_input

ProgressCallback = Callable[[int, int], None]

FILE_ORDER, EVENT_TIME_ORDER = "file", "event-time"
ORDERS = (FILE_ORDER, EVENT_TIME_ORDER)


class ReplayError(RuntimeError):
    """The replay could not start or did not complete."""


# ---------------------------------------------------------------------------------------
# Raw lines (docs/data-rules.md): \n, \r\n and \r end a line; a final ending adds no line
# ---------------------------------------------------------------------------------------

iter_raw_lines = shared_raw_lines.iter_raw_lines  # any bytes make lines: never a bad file
count_raw_lines = shared_raw_lines.count_raw_lines


class SalesFile(NamedTuple):
    file_seq: int
    path: Path
    lines: int
    first_seq: int  # global seq of its first line (= lines in the files before it)


def sales_files(input_dir) -> list[SalesFile]:
    """The input's sales files in name order with their line counts, read before the clock
    starts so that counting never delays an emission."""
    files, lines_before = [], 0
    for file_seq, path in enumerate(inspect_input(input_dir).sales_files):
        lines = count_raw_lines(path)
        files.append(SalesFile(file_seq, path, lines, lines_before))
        lines_before += lines
    return files


class Line(NamedTuple):
    sales: SalesFile  # the input file it comes from
    raw: bytes  # as read: replayed byte for byte, UTF-8 or not

    @property
    def text(self) -> str:
        return shared_raw_lines.decoded(self.raw)


def validated_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    return order


def lines_in_order(files: list[SalesFile], order: str) -> Iterable[Line]:
    """Every raw line, in emission order: read lazily in file order; in event-time order
    sorted at once (call it before the clock starts)."""
    if order == EVENT_TIME_ORDER:
        return event_time_order(files)
    return (Line(sales, raw) for sales in files for raw in shared_raw_lines.iter_raw_line_bytes(sales.path))


def event_time_order(files: list[SalesFile]) -> list[Line]:
    """Every raw line of the files, the valid ones sorted by Order Date (parsed by the
    oracle's rules, docs/data-rules.md).

    Lines without an Order Date to go by (headers, blank and quarantined lines) go first, in
    input order: they move no result and no watermark, so their place is only a matter of
    being well defined, and first keeps every header ahead of the data. The sort is stable:
    lines of the same minute keep their input order (an exact duplicate stays right after
    its original). The whole input is held in memory: a sort needs all of it.
    """
    from experiments.reference.oracle import classify_line  # pandas: only imported when sorting

    def event_time(line: Line) -> tuple[bool, dt.datetime]:
        record, _reason = classify_line(line.text)
        return (False, dt.datetime.min) if record is None else (True, record["order_ts"])

    return sorted(lines_in_order(files, FILE_ORDER), key=event_time)


def source_names(lines: list[Line]) -> str:
    """The input files a unit's lines come from, for its log row (one in file order)."""
    return ";".join(sorted({line.sales.path.name for line in lines}))
