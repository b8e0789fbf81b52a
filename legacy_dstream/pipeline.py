"""The legacy DStream logic, written as functions DStream -> DStream (testable with
queueStream). Each query keeps running totals with updateStateByKey.

What DStreams cannot express is shown, not hidden: there are no event-time watermarks.
`window_revenue` is keyed by hand on the event-time windows a line falls in and kept
in state forever (late lines are always counted, and the state never shrinks);
`reduceByKeyAndWindow` only gives processing-time windows (see `recent_revenue`).

Each query is one "pairing" (an order line -> its (key, value) pairs, `query_pairs`).
`grouped_sum(lines, query)` and its siblings keep one query's running totals on their own; the
application uses `all_totals`, which feeds every query from one parse: each partition of a
batch adds its lines up per (query, key) in one Python pass, so only a few pairs per
partition reach the single updateStateByKey shuffle, and `query_totals` reads one query
back out of it. Both give the same totals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal

from legacy_dstream.parsing import OrderLine, parse_lines, parse_shipments
from shared.catalogue import GROUPED_SUMS, ONE_PER_LINE, ORDER_DATE, ORDER_HOUR, QUERIES
from shared.settings import UNCATALOGUED, WorkloadSettings

EPOCH = dt.datetime(1970, 1, 1)
ZERO = Decimal("0.00")
LINE_ACCOUNTING = "line_accounting"  # the (query, key) name of the line outcomes' counts
Pairs = Callable[[OrderLine], Iterable[tuple]]


def parse(lines):
    """raw text -> (order line or None, reason or None), one Python call per partition"""
    return lines.mapPartitions(parse_lines)


def order_lines(parsed):
    return parsed.filter(lambda p: p[0] is not None).map(lambda p: p[0])


def shipments(lines):
    """raw shipments text -> Shipment records (a bad line fails the batch: reference data)

    textFileStream makes one partition per file, and the shipments arrive as one small file
    per sales file, all in a run's first batch: with 426 one-task partitions of Python, that
    batch kept the standard profile's follow run from being ready for 35 s; packed into the
    context's default parallelism (spark.default.parallelism, shared/spark.py), 17 s."""
    return lines.transform(lambda rdd: rdd.coalesce(rdd.context.defaultParallelism)).mapPartitions(parse_shipments)


def outcome(parsed_line) -> str:
    return "valid" if parsed_line[1] is None else parsed_line[1]


def outcomes(parsed):
    return parsed.map(lambda p: (outcome(p), 1))


def add_tuples(total: tuple | None, value: tuple) -> tuple:
    """Element-wise sum (None is nothing yet)."""
    if total is None:
        return value
    if len(value) == 2:
        return total[0] + value[0], total[1] + value[1]
    return tuple(a + b for a, b in zip(total, value))


def _add_tuples(new_values, running):
    """updateStateByKey function: element-wise sum of this batch's tuples onto the total."""
    total = running
    for value in new_values:
        total = add_tuples(total, value)
    return total


def running_totals(pairs):
    return pairs.updateStateByKey(_add_tuples)


def line_accounting(parsed):
    return running_totals(outcomes(parsed).map(lambda kv: (kv[0], (kv[1],))))


# ---------------------------------------------------------------------------------------
# One pairing per query: an order line -> its (key, value) pairs
# ---------------------------------------------------------------------------------------

# How each key and value source of a grouped sum (shared/catalogue.py) reads an OrderLine `o`;
# a line field is `o.<field>`. The sources are a closed vocabulary, checked by QuerySpec.
_SOURCE_EXPRESSIONS = {ORDER_DATE: "o.order_ts.date()", ORDER_HOUR: "o.order_ts.hour", ONE_PER_LINE: "1"}


def _expression(source: str) -> str:
    if source in _SOURCE_EXPRESSIONS:
        return _SOURCE_EXPRESSIONS[source]
    if source not in OrderLine._fields:
        raise ValueError(f"{source!r} is not a field of an order line")
    return f"o.{source}"


def grouped_sum_pairs(query: str) -> Pairs:
    """A grouped-sum query's pairing, from its declaration: (its key, its values) per line,
    the key a tuple only when the query has several key columns. Compiled from the
    declaration (as namedtuple compiles its class): a closure per source would cost this
    pass, run for every line and query, 2.5 times as long."""
    spec = QUERIES[query]
    keys = [_expression(source) for source in spec.group_by]
    key = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
    values = "".join(f"{_expression(source)}, " for source in spec.sum_of)
    return eval(f"lambda o: (({key}, ({values})),)", {})  # every source checked above


def event_time_windows(ts: dt.datetime, settings: WorkloadSettings) -> list[tuple[dt.datetime, dt.datetime]]:
    seconds = int((ts - EPOCH).total_seconds())
    last_start = seconds - seconds % settings.slide_seconds
    starts = range(last_start, seconds - settings.window_seconds, -settings.slide_seconds)
    return [
        (EPOCH + dt.timedelta(seconds=s), EPOCH + dt.timedelta(seconds=s + settings.window_seconds))
        for s in sorted(starts)
    ]


def window_pairs(settings: WorkloadSettings) -> Pairs:
    """window_revenue's pairing: one pair per event-time window the line falls in. Lines of one
    slide share their windows, so each slide's list is made once per pairing (per partition)."""
    slide = settings.slide_seconds
    known: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
    if settings.window_seconds % slide:  # windows would differ within a slide: no memo
        return lambda o: [(w, (o.revenue, 1)) for w in event_time_windows(o.order_ts, settings)]

    def pairs(o: OrderLine):
        seconds = int((o.order_ts - EPOCH).total_seconds())
        start = seconds - seconds % slide
        windows = known.get(start)
        if windows is None:
            windows = known[start] = event_time_windows(EPOCH + dt.timedelta(seconds=start), settings)
        value = (o.revenue, 1)
        return [(w, value) for w in windows]

    return pairs


def category_pairs(catalogue: dict) -> Pairs:
    """Stream-static join done the RDD way: a small dict shipped with the closure."""

    def pairs(o: OrderLine):
        entry = catalogue.get(o.product)
        if entry is None:
            return ((UNCATALOGUED, (o.revenue, ZERO)),)
        category, unit_cost = entry
        return ((category, (o.revenue, o.quantity * (o.price - unit_cost))),)

    return pairs


PAIRED_QUERIES = (*GROUPED_SUMS, "window_revenue", "category_revenue")  # what query_pairs knows


def query_pairs(query: str, settings: WorkloadSettings = WorkloadSettings(), catalogue: dict | None = None) -> Pairs:
    """The pairing of one query (KeyError for a query the legacy build does not express)."""
    if query in GROUPED_SUMS:
        return grouped_sum_pairs(query)
    if query == "window_revenue":
        return window_pairs(settings)
    if query == "category_revenue" and catalogue is not None:
        return category_pairs(catalogue)
    raise KeyError(query)


# ---------------------------------------------------------------------------------------
# One query's running totals on its own
# ---------------------------------------------------------------------------------------


def _pairs_of(lines, make_pairs: Callable[[], Pairs]):
    """Each partition gets its own pairing (window_pairs keeps a per-partition memo)."""

    def partition(iterator):
        pairs = make_pairs()
        for o in iterator:
            yield from pairs(o)

    return lines.mapPartitions(partition)


def grouped_sum(lines, query: str):
    return running_totals(lines.flatMap(grouped_sum_pairs(query)))


def window_revenue(lines, settings: WorkloadSettings):
    return running_totals(_pairs_of(lines, lambda: window_pairs(settings)))


def category_revenue(lines, catalogue: dict):
    return running_totals(lines.flatMap(category_pairs(catalogue)))


# ---------------------------------------------------------------------------------------
# Every query from one parse
# ---------------------------------------------------------------------------------------


def batch_totals(
    parsed, queries: Iterable[str], settings: WorkloadSettings = WorkloadSettings(), catalogue: dict | None = None
):
    """parsed lines -> ((query, key), this batch's total) for every query and for the line
    accounting (`LINE_ACCOUNTING`, keyed by outcome), added up within each partition.

    A key can come from several partitions: running_totals adds those up with the state."""
    queries = tuple(queries)

    def partition(records):
        folds = [(query, query_pairs(query, settings, catalogue), {}) for query in queries]
        counts: dict[str, int] = {}
        valid = 0
        for line, reason in records:
            if line is None:
                counts[reason] = counts.get(reason, 0) + 1
                continue
            valid += 1
            for _, pairs, values in folds:
                for key, value in pairs(line):
                    try:
                        values[key].append(value)
                    except KeyError:
                        values[key] = [value]
        if valid:
            counts["valid"] = valid
        for outcome_, count in counts.items():
            yield (LINE_ACCOUNTING, outcome_), (count,)
        for query, _, values in folds:
            for key, batch in values.items():  # each position summed by sum(), in C
                yield (query, key), tuple(map(sum, zip(*batch)))

    return parsed.mapPartitions(partition)


def all_totals(
    parsed,
    queries: Iterable[str],
    settings: WorkloadSettings = WorkloadSettings(),
    catalogue: dict | None = None,
    shipments=None,
):
    """Running totals of every query and of the line accounting, keyed by (query, key): one
    state and one shuffle per batch for all of them. With `shipments` (and `fulfilment`
    among the queries), the pairs `fulfilment_pairs` finds are added up there too."""
    queries = tuple(queries)
    partials = batch_totals(parsed, [q for q in queries if q != FULFILMENT], settings, catalogue)
    if shipments is not None and FULFILMENT in queries:
        pairs = fulfilment_pairs(order_lines(parsed), shipments, settings)
        partials = partials.union(pairs.map(lambda pair: ((FULFILMENT, pair[0].date()), (1, pair[1]))))
    return running_totals(partials)


# ---------------------------------------------------------------------------------------
# fulfilment: the stream-stream join, as DStreams can write it
# ---------------------------------------------------------------------------------------

FULFILMENT = "fulfilment"


def _join_step(within_seconds: int):
    """updateStateByKey function of the join, per (order_id, product): the state is every
    order time and ship time seen so far and the pairs this batch completed; a pair is an
    order line and a shipment with order_ts <= ship_ts <= order_ts + within. DStreams have
    no watermark to tell when a key can be forgotten, so the state is never dropped: no
    pair is missed, at the cost of state that grows with the input."""
    within = dt.timedelta(seconds=within_seconds)

    def step(new_values, state):
        orders, shipped = state[:2] if state else ((), ())
        new_orders = tuple(t for kind, t in new_values if kind == "o")
        new_shipped = tuple(t for kind, t in new_values if kind == "s")
        if not new_orders and not new_shipped:  # a key with state and nothing new: no new pair
            return (orders, shipped, ()) if state and state[2] else state
        pairs = [
            (s, int((s - o).total_seconds())) for o in new_orders for s in shipped + new_shipped if o <= s <= o + within
        ]
        pairs += [(s, int((s - o).total_seconds())) for o in orders for s in new_shipped if o <= s <= o + within]
        return orders + new_orders, shipped + new_shipped, tuple(pairs)

    return step


def fulfilment_pairs(lines, shipments, settings: WorkloadSettings):
    """(ship_ts, seconds to ship) for every pair completed in each batch (order lines from
    `lines`, Shipment records from `shipments`)."""
    events = lines.map(lambda o: ((o.order_id, o.product), ("o", o.order_ts))).union(
        shipments.map(lambda s: ((s.order_id, s.product), ("s", s.ship_ts)))
    )
    return events.updateStateByKey(_join_step(settings.ship_within_seconds)).flatMap(lambda kv: kv[1][2])


def query_totals(totals, query: str):
    """One query's (key, running total) pairs out of `all_totals`."""
    return totals.filter(lambda kv: kv[0][0] == query).map(lambda kv: (kv[0][1], kv[1]))


def recent_revenue(lines, window_seconds: int, slide_seconds: int):
    """Revenue of the last window of processing time: all reduceByKeyAndWindow can offer."""
    return lines.map(lambda o: ("all", o.revenue)).reduceByKeyAndWindow(
        lambda a, b: a + b, lambda a, b: a - b, window_seconds, slide_seconds
    )


def export_row(query: str, key, value) -> dict:
    """A (key, running total) state pair as an export row: the key's parts and the summed
    values by the catalogue's columns (fulfilment's average made from its sums)."""
    spec = QUERIES[query]
    row = dict(zip(spec.key_columns, key if len(spec.keys) > 1 else (key,)))
    row.update(zip(spec.sum_columns, value, strict=True))
    if query == FULFILMENT:
        row["avg_hours_to_ship"] = average_hours(row.pop("seconds_to_ship"), row["shipped_lines"])
    return row


def average_hours(total_seconds: int, pairs: int) -> Decimal:
    """total_seconds / (3600 * pairs), rounded half-up to two places, in integers."""
    hundredths = (200 * total_seconds + 3600 * pairs) // (7200 * pairs)
    return Decimal(hundredths).scaleb(-2)
