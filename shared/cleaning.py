"""Raw sales lines -> valid typed order lines + quarantined lines with a reason.

Pure DataFrame-to-DataFrame functions over a column of raw text lines, usable on a
batch or a streaming DataFrame alike. The rules are docs/data-rules.md.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shared.raw_lines import MAX_LINE_CHARS, REPLACEMENT_CHARACTER
from shared.settings import HEADER

ORDER_LINE_COLUMNS = (
    "order_id",
    "product",
    "quantity",
    "price",
    "revenue",
    "order_ts",
    "street",
    "city",
    "state",
    "zip",
)
PRICE_TYPE = "decimal(12,2)"
REVENUE_TYPE = "decimal(22,2)"  # 9-digit quantity x 10-digit price fits exactly
# A comma that has an even number of quotes after it is outside quotes.
_SPLIT_OUTSIDE_QUOTES = r',(?=(?:[^"]*"[^"]*")*[^"]*$)'
# The field patterns of docs/data-rules.md; the DuckDB baseline applies the same ones.
QUANTITY_PATTERN = r"^[0-9]{1,9}$"
PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
# month, day, two-digit year, hour, minute (the groups: the DuckDB baseline reads them)
ORDER_DATE_PATTERN = r"^([0-9]{2})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2})$"
STATE_ZIP_PATTERN = r"^([A-Z]{2}) ([0-9]{5})$"
# One UTF-8 byte-order mark at the start of a line (docs/data-rules.md). Hadoop's line
# reader already skips one at the very start of a file; a Kafka message or a line of
# concatenated exports can still start with one, and a line cannot tell if it opened a file.
_LEADING_BYTE_ORDER_MARK = "^\ufeff"


def _fields(text: Column) -> Column:
    """The trimmed CSV fields of one line, as an array of strings."""
    return F.transform(
        F.split(text, _SPLIT_OUTSIDE_QUOTES, -1),
        lambda f: F.trim(
            F.when(
                (F.length(f) >= 2) & f.startswith('"') & f.endswith('"'),
                F.regexp_replace(f.substr(F.lit(2), F.length(f) - 2), '""', '"'),
            ).otherwise(f)
        ),
    )


def classify_lines(raw: DataFrame, text_col: str = "value") -> DataFrame:
    """Every raw line with its fields parsed, its `reason` (null when valid) and typed columns.

    Other columns of `raw` (source file, sequence numbers) are kept.
    """
    fields = F.col("_fields")
    f = [F.element_at(fields, i + 1) for i in range(len(HEADER))]
    quotes = F.length(F.col(text_col)) - F.length(F.regexp_replace(F.col(text_col), '"', ""))
    address_parts = F.split(f[5], ", ", -1)
    state_zip = F.element_at(address_parts, 3)
    ts = F.try_to_timestamp(f[4], F.lit("MM/dd/yy HH:mm"))
    quantity_ok = f[2].rlike(QUANTITY_PATTERN) & (f[2].try_cast("bigint") != 0)
    price_ok = f[3].rlike(PRICE_PATTERN) & (f[3].try_cast(PRICE_TYPE) != 0)
    address_ok = (
        (F.size(address_parts) == 3)
        & (F.element_at(address_parts, 1) != "")
        & (F.element_at(address_parts, 2) != "")
        & state_zip.rlike(STATE_ZIP_PATTERN)
    )
    text = F.col(text_col)
    # before any split (docs/data-rules.md): bytes that are not UTF-8 (Spark's text source and
    # a Kafka value keep a line's bytes as they are), or U+FFFD, the mark of such bytes
    # decoded before; then a line too long to be an order line, so no regex runs over megabytes
    encoding = F.when(~F.is_valid_utf8(text) | text.contains(REPLACEMENT_CHARACTER), "not_utf8").when(
        F.length(text) > MAX_LINE_CHARS, "too_long"
    )
    reason = (
        F.when(encoding.isNotNull(), encoding)
        .when(F.forall(fields, lambda x: x == ""), "blank")
        .when(_is_header(fields), "header")
        .when((quotes % 2 == 1) | (F.size(fields) != len(HEADER)), "field_count")
        .when(F.exists(fields, lambda x: x == ""), "missing_field")
        .when(~quantity_ok, "bad_quantity")
        .when(~price_ok, "bad_price")
        .when(~f[4].rlike(ORDER_DATE_PATTERN) | ts.isNull(), "bad_date")
        .when(~address_ok, "bad_address")
    )
    valid = reason.isNull()
    quantity = F.when(valid, f[2].try_cast("int"))
    price = F.when(valid, f[3].try_cast(PRICE_TYPE))
    splittable = F.when(encoding.isNull(), F.coalesce(text, F.lit(""))).otherwise(F.lit(""))
    # one withColumns, not a withColumn per column: each call analyses the plan again, and a
    # live micro-batch paid 0.6-0.8 s of the driver's time for thirteen of them
    return (
        raw.withColumn("_fields", _fields(_without_byte_order_mark(splittable)))
        .withColumns(
            {
                "reason": reason,
                "order_id": F.when(valid, f[0]),
                "product": F.when(valid, f[1]),
                "quantity": quantity,
                "price": price,
                "revenue": (quantity * price).cast(REVENUE_TYPE),
                "order_ts": F.when(valid, ts),
                "street": F.when(valid, F.element_at(address_parts, 1)),
                "city": F.when(valid, F.element_at(address_parts, 2)),
                "state": F.when(valid, F.regexp_extract(state_zip, STATE_ZIP_PATTERN, 1)),
                "zip": F.when(valid, F.regexp_extract(state_zip, STATE_ZIP_PATTERN, 2)),
            }
        )
        .drop("_fields")
    )


def _without_byte_order_mark(text: Column) -> Column:
    """A byte-order mark is not part of the first field (docs/data-rules.md)."""
    return F.regexp_replace(text, _LEADING_BYTE_ORDER_MARK, "")


def _is_header(fields: Column) -> Column:
    same = [F.element_at(fields, i + 1) == name for i, name in enumerate(HEADER)]
    result = F.size(fields) == len(HEADER)
    for condition in same:
        result = result & F.coalesce(condition, F.lit(False))
    return result


def valid_order_lines(classified: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    """The valid lines as typed order lines (plus any `keep` columns, e.g. the source file)."""
    return classified.where(F.col("reason").isNull()).select(*ORDER_LINE_COLUMNS, *keep)


def quarantined_lines(classified: DataFrame, text_col: str = "value", keep: tuple[str, ...] = ()) -> DataFrame:
    """The quarantined lines with their reason; a `not_utf8` line escaped (`escaped_bytes`),
    so that every reader of the table can read it and its bytes are still all there."""
    text = F.col(text_col)
    return classified.where(F.col("reason").isNotNull()).select(
        F.when(F.col("reason") == "not_utf8", escaped_bytes(text)).otherwise(text).alias("raw_line"), "reason", *keep
    )


def escaped_bytes(text: Column) -> Column:
    """ASCII bytes as themselves, every other byte as `\\xNN`: shared.raw_lines.escaped
    (Python's "backslashreplace") written in Spark SQL."""
    pairs = F.regexp_extract_all(F.hex(text), F.lit("(..)"), 1)
    return F.array_join(
        F.transform(
            pairs,
            lambda h: F.when(h < "80", F.decode(F.unhex(h), "US-ASCII")).otherwise(F.concat(F.lit("\\x"), F.lower(h))),
        ),
        "",
    )


def line_accounting(classified: DataFrame) -> DataFrame:
    """One row per outcome (`valid` or a quarantine reason) with its line count."""
    return classified.groupBy(F.coalesce(F.col("reason"), F.lit("valid")).alias("outcome")).agg(
        F.count(F.lit(1)).alias("lines")
    )
