"""The legacy DStream logic, written as functions DStream -> DStream (testable with
queueStream). Each query keeps running totals with updateStateByKey.

What DStreams cannot express is shown, not hidden: there are no event-time watermarks.
`window_revenue` is keyed by hand on the event-time windows a line falls in and kept
in state forever (late lines are always counted, and the state never shrinks);
`reduceByKeyAndWindow` only gives processing-time windows (see `recent_revenue`).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from legacy_dstream.parsing import parse_line
from shared.settings import UNCATALOGUED, WorkloadSettings

EPOCH = dt.datetime(1970, 1, 1)
ZERO = Decimal("0.00")


def parse(lines):
    """raw text -> (order line or None, reason or None)"""
    return lines.map(parse_line)


def order_lines(parsed):
    return parsed.filter(lambda p: p[0] is not None).map(lambda p: p[0])


def outcomes(parsed):
    return parsed.map(lambda p: ("valid" if p[1] is None else p[1], 1))


def _add_tuples(new_values, running):
    """updateStateByKey function: element-wise sum of this batch's tuples onto the total."""
    total = running
    for value in new_values:
        total = value if total is None else tuple(a + b for a, b in zip(total, value))
    return total


def running_totals(pairs):
    return pairs.updateStateByKey(_add_tuples)


def line_accounting(parsed):
    return running_totals(outcomes(parsed).map(lambda kv: (kv[0], (kv[1],))))


def city_revenue(lines):
    return running_totals(lines.map(lambda o: ((o.city, o.state), (o.revenue, 1))))


def daily_revenue(lines):
    return running_totals(lines.map(lambda o: (o.order_ts.date(), (o.revenue, 1))))


def product_sales(lines):
    return running_totals(lines.map(lambda o: (o.product, (o.quantity, o.revenue))))


def hourly_sales(lines):
    return running_totals(lines.map(lambda o: (o.order_ts.hour, (1, o.quantity, o.revenue))))


def city_revenue_v1(lines):
    return running_totals(lines.map(lambda o: (o.city, (o.revenue,))))


def event_time_windows(ts: dt.datetime, settings: WorkloadSettings) -> list[tuple[dt.datetime, dt.datetime]]:
    seconds = int((ts - EPOCH).total_seconds())
    last_start = seconds - seconds % settings.slide_seconds
    starts = range(last_start, seconds - settings.window_seconds, -settings.slide_seconds)
    return [(EPOCH + dt.timedelta(seconds=s), EPOCH + dt.timedelta(seconds=s + settings.window_seconds))
            for s in sorted(starts)]


def window_revenue(lines, settings: WorkloadSettings):
    return running_totals(lines.flatMap(
        lambda o: [(w, (o.revenue, 1)) for w in event_time_windows(o.order_ts, settings)]
    ))


def category_revenue(lines, catalogue: dict):
    """Stream-static join done the RDD way: a small dict shipped with the closure."""
    def categorise(o):
        entry = catalogue.get(o.product)
        if entry is None:
            return UNCATALOGUED, (o.revenue, ZERO)
        category, unit_cost = entry
        return category, (o.revenue, o.quantity * (o.price - unit_cost))

    return running_totals(lines.map(categorise))


def recent_revenue(lines, window_seconds: int, slide_seconds: int):
    """Revenue of the last window of processing time: all reduceByKeyAndWindow can offer."""
    return lines.map(lambda o: ("all", o.revenue)).reduceByKeyAndWindow(
        lambda a, b: a + b, lambda a, b: a - b, window_seconds, slide_seconds
    )


def export_row(query: str, key, value) -> dict:
    """A (key, running total) state pair as an export row."""
    if query == "city_revenue":
        return {"city": key[0], "state": key[1], "revenue": value[0], "order_lines": value[1]}
    if query == "daily_revenue":
        return {"date": key, "revenue": value[0], "order_lines": value[1]}
    if query == "product_sales":
        return {"product": key, "quantity": value[0], "revenue": value[1]}
    if query == "hourly_sales":
        return {"hour": key, "order_lines": value[0], "quantity": value[1], "revenue": value[2]}
    if query == "window_revenue":
        return {"window_start": key[0], "window_end": key[1], "revenue": value[0], "order_lines": value[1]}
    if query == "category_revenue":
        return {"category": key, "revenue": value[0], "margin": value[1]}
    if query == "city_revenue_v1":
        return {"city": key, "revenue": value[0]}
    raise KeyError(query)
