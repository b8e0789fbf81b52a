"""The query catalogue as data: one declaration per query, read by every build and baseline.

A `QuerySpec` says what a query's results export holds (its key and value columns and
their kinds), what inputs it needs beyond the order lines, whether its result needs
event-time state (a watermark) or is a plain sum of per-micro-batch partials, and which
columns those partials sum. A query that is a grouped sum over the valid order lines also
says what each key is made of (`group_by`) and what each value adds up (`sum_of`): from
that alone Spark's function (shared/queries.grouped_sum), the DStream build's pairing,
the DuckDB baseline's SQL, Kappa's partials, Lambda's views and the recovery step's
counted queries follow. Adding such a query is this declaration and the oracle's own
implementation (experiments/reference/oracle.py); docs/design.md lists the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

STRING, INTEGER, MONEY, DATE, TIMESTAMP = "string", "integer", "money", "date", "timestamp"
KINDS = (STRING, INTEGER, MONEY, DATE, TIMESTAMP)

# What a grouped sum's key can be made of, beyond an order line's own string fields
# (order_id, product, city, state, street, zip): the UTC date or hour of its order time.
ORDER_DATE, ORDER_HOUR = "date(order_ts)", "hour(order_ts)"
KEY_FIELDS = ("order_id", "product", "city", "state", "street", "zip")
KEY_SOURCES = {**{field: STRING for field in KEY_FIELDS}, ORDER_DATE: DATE, ORDER_HOUR: INTEGER}
# What a grouped sum's value can add up: an order line's revenue or quantity, or 1 per line.
ONE_PER_LINE = "1"
VALUE_SOURCES = {"revenue": MONEY, "quantity": INTEGER, ONE_PER_LINE: INTEGER}


@dataclass(frozen=True)
class QuerySpec:
    name: str
    keys: tuple[tuple[str, str], ...]  # (column, kind) of the export's key columns
    values: tuple[tuple[str, str], ...]  # (column, kind) of its value columns
    needs: tuple[str, ...] = ()  # optional inputs: "catalogue", "shipments"
    # Its result depends on a watermark (event-time windows, a stream-stream join): a streaming
    # build keeps state for it. Otherwise the result is the sum of per-micro-batch partials.
    event_time: bool = False
    # The columns a partial result sums, when they are not the export's values (fulfilment
    # keeps lines and seconds, and averages them only for the export).
    partial_sums: tuple[tuple[str, str], ...] | None = None
    # A grouped sum over the valid order lines: per key column what it is made of
    # (KEY_SOURCES), per value column what it adds up (VALUE_SOURCES). Empty: the query has
    # its own function in each build (a join, event-time windows).
    group_by: tuple[str, ...] = ()
    sum_of: tuple[str, ...] = ()

    def __post_init__(self):
        kinds = [kind for _, kind in self.keys + self.values + (self.partial_sums or ())]
        if set(kinds) - set(KINDS):
            raise ValueError(f"{self.name}: unknown kinds {sorted(set(kinds) - set(KINDS))}")
        if self.group_by or self.sum_of:
            if (len(self.group_by), len(self.sum_of)) != (len(self.keys), len(self.values)):
                raise ValueError(f"{self.name}: group_by and sum_of need one entry per key and value column")
            made = [KEY_SOURCES.get(source) for source in self.group_by]
            added = [VALUE_SOURCES.get(source) for source in self.sum_of]
            if made != [kind for _, kind in self.keys] or added != [kind for _, kind in self.values]:
                raise ValueError(
                    f"{self.name}: a key or value source does not give its column's kind "
                    f"(keys from {sorted(KEY_SOURCES)}, values from {sorted(VALUE_SOURCES)})"
                )
            if self.event_time or self.needs or self.partial_sums:
                raise ValueError(f"{self.name}: a grouped sum needs nothing but the order lines")

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.keys + self.values]

    @property
    def key_columns(self) -> list[str]:
        return [name for name, _ in self.keys]

    @property
    def types(self) -> dict[str, str]:
        return dict(self.keys + self.values)

    @property
    def sums(self) -> tuple[tuple[str, str], ...]:
        """(column, kind) of what a partial result of this query adds up."""
        return self.values if self.partial_sums is None else self.partial_sums

    @property
    def sum_columns(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.sums)

    @property
    def additive(self) -> bool:
        """Its running result is its partials summed per key: no state beyond the totals."""
        return not self.event_time

    @property
    def grouped_sum(self) -> bool:
        return bool(self.group_by)

    @property
    def counts_lines(self) -> bool:
        """An additive query that counts the order lines it has seen (`order_lines`)."""
        return self.additive and "order_lines" in self.sum_columns


CATALOGUE = (
    QuerySpec(
        "city_revenue",
        (("city", STRING), ("state", STRING)),
        (("revenue", MONEY), ("order_lines", INTEGER)),
        group_by=("city", "state"),
        sum_of=("revenue", ONE_PER_LINE),
    ),
    QuerySpec(
        "daily_revenue",
        (("date", DATE),),
        (("revenue", MONEY), ("order_lines", INTEGER)),
        group_by=(ORDER_DATE,),
        sum_of=("revenue", ONE_PER_LINE),
    ),
    QuerySpec(
        "product_sales",
        (("product", STRING),),
        (("quantity", INTEGER), ("revenue", MONEY)),
        group_by=("product",),
        sum_of=("quantity", "revenue"),
    ),
    QuerySpec(
        "hourly_sales",
        (("hour", INTEGER),),
        (("order_lines", INTEGER), ("quantity", INTEGER), ("revenue", MONEY)),
        group_by=(ORDER_HOUR,),
        sum_of=(ONE_PER_LINE, "quantity", "revenue"),
    ),
    QuerySpec(
        "window_revenue",
        (("window_start", TIMESTAMP), ("window_end", TIMESTAMP)),
        (("revenue", MONEY), ("order_lines", INTEGER)),
        event_time=True,
    ),
    QuerySpec(
        "category_revenue", (("category", STRING),), (("revenue", MONEY), ("margin", MONEY)), needs=("catalogue",)
    ),
    QuerySpec(
        "fulfilment",
        (("ship_date", DATE),),
        (("shipped_lines", INTEGER), ("avg_hours_to_ship", MONEY)),
        needs=("shipments",),
        event_time=True,
        partial_sums=(("shipped_lines", INTEGER), ("seconds_to_ship", INTEGER)),
    ),
    QuerySpec("city_revenue_v1", (("city", STRING),), (("revenue", MONEY),), group_by=("city",), sum_of=("revenue",)),
)
QUERIES: dict[str, QuerySpec] = {spec.name: spec for spec in CATALOGUE}
QUERY_NAMES: tuple[str, ...] = tuple(QUERIES)
ADDITIVE: tuple[str, ...] = tuple(spec.name for spec in CATALOGUE if spec.additive)
GROUPED_SUMS: tuple[str, ...] = tuple(spec.name for spec in CATALOGUE if spec.grouped_sum)


def columns_of(specs, part: str) -> dict[str, str]:
    """Every column of the specs' `part` ("keys" or "sums") with its kind, in catalogue order
    (a column two queries share must have one kind)."""
    found: dict[str, str] = {}
    for spec in specs:
        for name, kind in getattr(spec, part):
            if found.setdefault(name, kind) != kind:
                raise ValueError(f"the column {name} is {found[name]} in one query and {kind} in {spec.name}")
    return found
