"""A model of what an event-time build keeps of `window_revenue` under its watermark.

The oracle's `window_revenue` is the event-time truth over every valid line. A Structured
Streaming build drops a (line, window) pair when the window has already closed under the
watermark, so on input with lines later than the watermark it differs from the truth by
exactly those pairs. This model replays Spark's rule over the same micro-batches (sales
files in arrival order, N files per batch) so the difference can be explained line by
line, in the manner of Beam's Nexmark models:

- the watermark after batch k is max(event time seen in batches 0..k) - delay;
- a row of batch k is dropped as late when its window's end <= the watermark that was in
  force for batch k-1 (Spark 3.4+ filters late rows with the previous batch's watermark
  and evicts state with the current one);
- the first two batches drop nothing (no watermark yet).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from experiments.reference.oracle import classify_line, sales_files
from shared.raw_lines import iter_raw_lines
from shared.settings import WorkloadSettings

EPOCH = dt.datetime(1970, 1, 1)


@dataclass
class WatermarkModelResult:
    rows: list[dict]  # window_revenue rows the build should keep
    dropped: list[dict]  # one per (line, window) pair dropped as late
    batches: int
    valid_lines: int = 0  # every valid line the model read, dropped or not

    @property
    def dropped_lines(self) -> int:
        """Valid lines dropped from at least one of their windows. A line is its file and
        its line number: exact duplicate lines are real lines and count apart."""
        return len({(d["file"], d["line_number"]) for d in self.dropped})


def arrival_order(input_dir) -> list[Path]:
    """The order a file source takes files in: modification time, then name."""
    return sorted(sales_files(input_dir), key=lambda p: (os.stat(p).st_mtime_ns, p.name))


def _windows(ts: dt.datetime, settings: WorkloadSettings) -> list[tuple[dt.datetime, dt.datetime]]:
    seconds = int((ts - EPOCH).total_seconds())
    last = seconds - seconds % settings.slide_seconds
    starts = range(last, seconds - settings.window_seconds, -settings.slide_seconds)
    return [
        (EPOCH + dt.timedelta(seconds=s), EPOCH + dt.timedelta(seconds=s + settings.window_seconds)) for s in starts
    ]


def model(input_dir, settings: WorkloadSettings = WorkloadSettings(), files_per_batch: int = 1) -> WatermarkModelResult:
    files = arrival_order(input_dir)
    delay = dt.timedelta(seconds=settings.watermark_seconds)
    sums: dict[tuple, list] = {}
    dropped: list[dict] = []
    max_seen: dt.datetime | None = None
    watermark_now: dt.datetime | None = None  # in force for the current batch
    watermark_before: dt.datetime | None = None  # in force for the previous batch: filters late rows
    batches = [files[i : i + files_per_batch] for i in range(0, len(files), files_per_batch)]
    valid_lines = 0
    for batch in batches:
        batch_max = None
        for path in batch:
            for line_number, text in enumerate(iter_raw_lines(path), start=1):
                record, reason = classify_line(text)
                if reason is not None:
                    continue
                assert record is not None  # no reason: a valid line
                valid_lines += 1
                ts = record["order_ts"]
                batch_max = ts if batch_max is None or ts > batch_max else batch_max
                for window in _windows(ts, settings):
                    if watermark_before is not None and window[1] <= watermark_before:
                        dropped.append(
                            {
                                "file": path.name,
                                "line_number": line_number,
                                "line": text,
                                "order_ts": ts,
                                "window_start": window[0],
                                "window_end": window[1],
                            }
                        )
                        continue
                    total = sums.setdefault(window, [Decimal("0.00"), 0])
                    total[0] += record["revenue"]
                    total[1] += 1
        if batch_max is not None:
            max_seen = batch_max if max_seen is None or batch_max > max_seen else max_seen
        watermark_before = watermark_now
        if max_seen is not None:
            watermark_now = max_seen - delay
    rows = [
        {"window_start": start, "window_end": end, "revenue": revenue, "order_lines": count}
        for (start, end), (revenue, count) in sums.items()
    ]
    return WatermarkModelResult(rows, dropped, len(batches), valid_lines)
