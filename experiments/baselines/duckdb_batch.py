"""The DuckDB baseline: the query catalogue in DuckDB SQL over the same CSV files.

A third implementation of docs/data-rules.md (besides shared/cleaning.py in Spark SQL and
the oracle in plain Python), written as SQL so that `lab bench` can set Spark's batch time
against a single-process columnar engine (F5). Reading, cleaning and every query run in
DuckDB; Python only hands it the file list, turns the fulfilment average from integer
hundredths into a Decimal, and writes the rows with the shared export writer
(shared/export.py), so the export is byte-comparable with the oracle's.

How the rules map to SQL:
- Raw lines: each sales file is read whole (`read_blob`, decoded); one byte-order mark at
  the very start of a file is dropped; an empty file has no lines; one final line ending is
  removed, then the text is split at `\\r\\n`, `\\n` or `\\r` (RE2 alternation is
  leftmost-first, so `\\r\\n` is one line end): exactly the lines shared/raw_lines.py
  yields. A file that is not UTF-8 is split the same way as its escaped bytes and each line
  decoded alone; a line that does not decode, or holds U+FFFD, is `not_utf8`, one longer
  than MAX_LINE_CHARS `too_long`, both before any split into fields.
- One U+FEFF at the start of a line is dropped before it is classified.
- Fields: with an even number of `"` a line splits into fields at the commas outside
  quotes, i.e. it is FIELD(,FIELD)* with FIELD = (?:[^",]|"[^"]*")* (a quoted span pairs
  consecutive quotes, as the oracle's toggling scan does). So "exactly six fields" is a
  full match of six FIELDs, whose groups are the fields; a line with an odd number of
  quotes is `field_count`. A field wrapped in quotes loses them and `""` becomes `"`,
  then spaces (only spaces) are trimmed.
- The reasons apply in the oracle's order: an odd number of quotes is `field_count` first;
  then `blank` (any number of fields, all empty after the rules above: a full match of
  EMPTY(,EMPTY)* with EMPTY = ` *` or `" *"`), `header`, `field_count`, `missing_field`...
- Quantities, prices and dates are checked with the same regular expressions as the other
  implementations; `yy` is 20yy, a date must exist (a DATE cast of the parts) and the time
  be 00:00-23:59; timestamps are DuckDB TIMESTAMP (no time zone anywhere), so UTC wall clock.
- Money is DECIMAL: price DECIMAL(12,2), revenue quantity x price exactly, sums
  DECIMAL(38,2). The fulfilment average is computed in integers (hundredths of an hour,
  rounded half-up).

Run as its own process (`lab bench` times it so):
    python -m experiments.baselines.duckdb_batch --input DIR --workdir W [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal

from shared.catalogue import GROUPED_SUMS, MONEY, ONE_PER_LINE, ORDER_DATE, ORDER_HOUR, QUERIES, QUERY_NAMES, QuerySpec
from shared.cleaning import ORDER_DATE_PATTERN, PRICE_PATTERN, QUANTITY_PATTERN, STATE_ZIP_PATTERN
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.raw_lines import MAX_LINE_CHARS, REPLACEMENT_CHARACTER
from shared.settings import CATALOGUE_COLUMNS, HEADER, SHIPMENT_COLUMNS, UNCATALOGUED, WorkloadSettings

BUILD = "duckdb"
FIELD = r'((?:[^",]|"[^"]*")*)'
SIX_FIELDS = "^" + ",".join([FIELD] * len(HEADER)) + "$"
EMPTY = r'(?: *|" *")'
ALL_EMPTY = f"^{EMPTY}(?:,{EMPTY})*$"
SHIP_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
BOM = "\ufeff"


def _literal(text: str) -> str:
    """A SQL string literal (no escapes in SQL strings but the doubled quote)."""
    return "'" + text.replace("'", "''") + "'"


def _unwrapped(field: str) -> str:
    """A raw field without its wrapping quotes (`""` inside becoming `"`), trimmed of spaces."""
    return (
        f"trim(CASE WHEN length({field}) >= 2 AND starts_with({field}, '\"') AND ends_with({field}, '\"') "
        f"THEN replace(substr({field}, 2, length({field}) - 2), '\"\"', '\"') ELSE {field} END, ' ')"
    )


def _lines_sql(files: list[str]) -> str:
    """Every raw line of the files, as `text` (without its line ending; NULL for a line whose
    bytes are not UTF-8); `n` is NULL."""
    listing = "[" + ", ".join(_literal(f) for f in files) + "]"
    # A file that is UTF-8 (nearly all) is split as text. Any other is split as its escaped
    # bytes (a BLOB cast to VARCHAR writes every byte outside printable ASCII as \xNN, the
    # backslash too, so the form is exact), and each line is decoded on its own.
    escaped_end = r"\\x0D\\x0A|\\x0A|\\x0D"
    return f"""
    WITH contents AS (
        SELECT try(decode(content)) AS content, content AS bytes FROM read_blob({listing})
    ), texts AS (
        SELECT CASE WHEN starts_with(content, {_literal(BOM)}) THEN substr(content, 2) ELSE content END AS content
        FROM contents WHERE content IS NOT NULL
    ), escaped AS (
        SELECT regexp_replace(CAST(bytes AS VARCHAR), '^\\\\xEF\\\\xBB\\\\xBF', '') AS content
        FROM contents WHERE content IS NULL
    )
    SELECT NULL::BIGINT AS n,
           unnest(string_split_regex(regexp_replace(content, '(\\r\\n|\\n|\\r)$', ''), '\\r\\n|\\n|\\r')) AS text
    FROM texts
    WHERE content <> ''
    UNION ALL
    SELECT NULL::BIGINT AS n, try(decode(CAST(line AS BLOB))) AS text
    FROM (SELECT unnest(string_split_regex(regexp_replace(content, '({escaped_end})$', ''), '{escaped_end}')) AS line
          FROM escaped)
    """


def _classified_sql(lines_sql: str) -> str:
    """Every raw line of `lines_sql` (columns n, text) with its `reason` (NULL when valid)
    and typed columns; `n` is carried through (tests number their lines with it)."""
    names = [f"f{i}" for i in range(1, len(HEADER) + 1)]
    struct_names = "[" + ", ".join(_literal(n) for n in names) + "]"
    header_equal = " AND ".join(f"{n} = {_literal(h)}" for n, h in zip(names, HEADER))
    return f"""
    WITH lines AS ({lines_sql}),
    encoded AS (
        SELECT n, text,
               CASE WHEN text IS NULL OR contains(text, {_literal(REPLACEMENT_CHARACTER)}) THEN 'not_utf8'
                    WHEN length(text) > {MAX_LINE_CHARS} THEN 'too_long' END AS encoding
        FROM lines
    ),
    stripped AS (   -- a line with an encoding reason is not split: no regular expression over megabytes
        SELECT n, encoding,
               CASE WHEN encoding IS NOT NULL THEN ''
                    WHEN starts_with(text, {_literal(BOM)}) THEN substr(text, 2) ELSE text END AS line
        FROM encoded
    ),
    split AS (
        SELECT n, line, encoding,
               (length(line) - length(replace(line, '"', ''))) % 2 = 1 AS odd_quotes,
               regexp_full_match(line, {_literal(ALL_EMPTY)}) AS all_empty,
               regexp_full_match(line, {_literal(SIX_FIELDS)}) AS six,
               regexp_extract(line, {_literal(SIX_FIELDS)}, {struct_names}) AS raw
        FROM stripped
    ),
    fielded AS (
        SELECT n, line, encoding, odd_quotes, all_empty, six,
               {", ".join(f"{_unwrapped(f'raw.{n}')} AS {n}" for n in names)}
        FROM split
    ),
    parsed AS (
        SELECT *,
               regexp_extract(f5, {_literal(ORDER_DATE_PATTERN)}, ['mo', 'd', 'y', 'h', 'mi']) AS date_parts,
               string_split(f6, ', ') AS address
        FROM fielded
    ),
    checked AS (
        SELECT *,
               regexp_full_match(f3, {_literal(QUANTITY_PATTERN)}) AND TRY_CAST(f3 AS BIGINT) <> 0 AS quantity_ok,
               regexp_full_match(f4, {_literal(PRICE_PATTERN)}) AND TRY_CAST(f4 AS DECIMAL(12, 2)) <> 0 AS price_ok,
               regexp_full_match(f5, {_literal(ORDER_DATE_PATTERN)})
                 AND TRY_CAST(date_parts.h AS INTEGER) <= 23 AND TRY_CAST(date_parts.mi AS INTEGER) <= 59
                 AND TRY_CAST('20' || date_parts.y || '-' || date_parts.mo || '-' || date_parts.d AS DATE) IS NOT NULL
                 AS date_ok,
               len(address) = 3 AND address[1] <> '' AND address[2] <> ''
                 AND regexp_full_match(address[3], {_literal(STATE_ZIP_PATTERN)}) AS address_ok
        FROM parsed
    )
    SELECT n,
        CASE
            WHEN encoding IS NOT NULL THEN encoding
            WHEN odd_quotes THEN 'field_count'
            WHEN all_empty THEN 'blank'
            WHEN six AND {header_equal} THEN 'header'
            WHEN NOT six THEN 'field_count'
            WHEN {" OR ".join(f"{n} = ''" for n in names)} THEN 'missing_field'
            WHEN NOT quantity_ok THEN 'bad_quantity'
            WHEN NOT price_ok THEN 'bad_price'
            WHEN NOT date_ok THEN 'bad_date'
            WHEN NOT address_ok THEN 'bad_address'
        END AS reason,
        f1 AS order_id, f2 AS product,
        TRY_CAST(f3 AS BIGINT) AS quantity,
        TRY_CAST(f4 AS DECIMAL(12, 2)) AS price,
        TRY_CAST('20' || date_parts.y || '-' || date_parts.mo || '-' || date_parts.d || ' '
                 || date_parts.h || ':' || date_parts.mi || ':00' AS TIMESTAMP) AS order_ts,
        address[1] AS street, address[2] AS city,
        regexp_extract(address[3], {_literal(STATE_ZIP_PATTERN)}, 1) AS state,
        regexp_extract(address[3], {_literal(STATE_ZIP_PATTERN)}, 2) AS zip
    FROM checked
    """


def _read_reference_csv(paths: list[str], columns: tuple[str, ...]) -> str:
    """A reference CSV (RFC 4180 quoting, a header) with every column as text, as the oracle reads it."""
    listing = "[" + ", ".join(_literal(p) for p in paths) + "]"
    typed = "{" + ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in columns) + "}"
    return (
        f"SELECT * FROM read_csv({listing}, header = true, columns = {typed}, quote = '\"', escape = '\"', "
        f"delim = ',', strict_mode = true, auto_detect = false)"
    )


# How each key and value source of a grouped sum (shared/catalogue.py) reads in DuckDB's SQL.
_KEY_SQL = {ORDER_DATE: "CAST(order_ts AS DATE)", ORDER_HOUR: "hour(order_ts)"}


def _summed_sql(source: str, kind: str) -> str:
    if source == ONE_PER_LINE:
        return "count(*)"
    return f"CAST(sum({source}) AS DECIMAL(38, 2))" if kind == MONEY else f"sum({source})"


def grouped_sum_sql(spec: QuerySpec) -> str:
    """A grouped-sum query (spec.group_by / spec.sum_of) over the table `lines`."""
    keys = [f"{_KEY_SQL.get(source, source)} AS {name}" for source, (name, _) in zip(spec.group_by, spec.keys)]
    sums = [f"{_summed_sql(source, kind)} AS {name}" for source, (name, kind) in zip(spec.sum_of, spec.values)]
    positions = ", ".join(str(i + 1) for i in range(len(keys)))
    return f"SELECT {', '.join(keys + sums)} FROM lines GROUP BY {positions}"


def query_sql(settings: WorkloadSettings) -> dict[str, str]:
    """Each query over the table `lines` (valid order lines), `catalogue` and `shipments`;
    columns named as the export names them (fulfilment: hundredths instead of the average)."""
    slide, window = settings.slide_seconds, settings.window_seconds
    return {
        **{query: grouped_sum_sql(QUERIES[query]) for query in GROUPED_SUMS},
        "window_revenue": f"""
            WITH timed AS (
                SELECT revenue, epoch_s - epoch_s % {slide} AS latest
                FROM (SELECT revenue, datediff('second', TIMESTAMP '1970-01-01 00:00:00', order_ts) AS epoch_s
                      FROM lines)
            ), windows AS (
                SELECT revenue, latest - k * {slide} AS start_s
                FROM timed, (SELECT unnest(range({window // slide})) AS k)
            )
            SELECT TIMESTAMP '1970-01-01 00:00:00' + to_seconds(start_s) AS window_start,
                   TIMESTAMP '1970-01-01 00:00:00' + to_seconds(start_s + {window}) AS window_end,
                   CAST(sum(revenue) AS DECIMAL(38, 2)) AS revenue, count(*) AS order_lines
            FROM windows GROUP BY start_s""",
        "category_revenue": f"""
            SELECT coalesce(c.category, {_literal(UNCATALOGUED)}) AS category,
                   CAST(sum(l.revenue) AS DECIMAL(38, 2)) AS revenue,
                   CAST(sum(CASE WHEN c.product IS NULL THEN 0
                                 ELSE CAST(l.quantity AS DECIMAL(18, 0)) * (l.price - c.unit_cost) END)
                        AS DECIMAL(38, 2)) AS margin
            FROM lines l LEFT JOIN catalogue c ON l.product = c.product
            GROUP BY 1""",
        "fulfilment": f"""
            WITH pairs AS (
                SELECT s.ship_ts, datediff('second', l.order_ts, s.ship_ts) AS seconds
                FROM lines l JOIN shipments s ON l.order_id = s.order_id AND l.product = s.product
                 AND s.ship_ts >= l.order_ts AND s.ship_ts <= l.order_ts + to_seconds({settings.ship_within_seconds})
            ), days AS (
                SELECT CAST(ship_ts AS DATE) AS ship_date, count(*) AS shipped_lines,
                       CAST(sum(seconds) AS HUGEINT) AS total_seconds
                FROM pairs GROUP BY 1
            )
            SELECT ship_date, shipped_lines,
                   (200 * total_seconds + 3600 * shipped_lines) // (7200 * shipped_lines) AS hundredths
            FROM days""",
    }


def classify_texts(texts: list[str]) -> list[dict]:
    """The classification of each text as one raw line, in order (for tests: the same SQL
    as the baseline, fed from a table instead of files)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("CREATE TEMP TABLE texts (n BIGINT, text VARCHAR)")
        con.executemany("INSERT INTO texts VALUES (?, ?)", list(enumerate(texts)))
        cursor = con.execute(_classified_sql("SELECT n, text FROM texts") + " ORDER BY n")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor.fetchall()]
    finally:
        con.close()


def run_duckdb(
    input_dir: str | os.PathLike,
    workdir: str | os.PathLike,
    settings: WorkloadSettings | None = None,
    threads: int | None = None,
) -> dict[str, str]:
    """Compute every applicable query with DuckDB and write the export; returns query -> status."""
    import duckdb

    settings = (settings or WorkloadSettings()).validated()
    layout = inspect_input(input_dir)
    con = duckdb.connect(":memory:")
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute("SET TimeZone = 'UTC'")  # no TIMESTAMPTZ is used; set anyway so nothing depends on the machine
        con.execute(
            f"CREATE TEMP TABLE classified AS {_classified_sql(_lines_sql([str(p) for p in layout.sales_files]))}"
        )
        con.execute(
            "CREATE TEMP VIEW lines AS SELECT order_id, product, quantity, price, "
            "CAST(CAST(quantity AS DECIMAL(18, 0)) * price AS DECIMAL(22, 2)) AS revenue, order_ts, "
            "street, city, state, zip "
            "FROM classified WHERE reason IS NULL"
        )
        outcomes = dict(con.execute("SELECT coalesce(reason, 'valid'), count(*) FROM classified GROUP BY 1").fetchall())
        skipped = layout.not_applicable()
        if layout.catalogue is not None:
            con.execute(
                "CREATE TEMP TABLE raw_catalogue AS " + _read_reference_csv([str(layout.catalogue)], CATALOGUE_COLUMNS)
            )
            _check_catalogue(con, layout.catalogue)
            con.execute(
                "CREATE TEMP TABLE catalogue AS SELECT product, category, "
                "CAST(unit_cost AS DECIMAL(12, 2)) AS unit_cost FROM raw_catalogue"
            )
        if layout.shipments_dir is not None:
            files = [str(p) for p in sorted(layout.shipments_dir.glob("*.csv"))]
            con.execute("CREATE TEMP TABLE raw_shipments AS " + _read_reference_csv(files, SHIPMENT_COLUMNS))
            _check_shipments(con)
            con.execute(
                "CREATE TEMP TABLE shipments AS SELECT order_id, product, "
                "CAST(ship_time AS TIMESTAMP) AS ship_ts FROM raw_shipments"
            )
        rows = {}
        for query, sql in query_sql(settings).items():
            if query in skipped:
                continue
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            rows[query] = [dict(zip(names, values)) for values in cursor.fetchall()]
    finally:
        con.close()
    for row in rows.get("fulfilment", []):
        row["avg_hours_to_ship"] = Decimal(int(row.pop("hundredths"))).scaleb(-2)
    valid = int(outcomes.pop("valid", 0))
    return write_results(
        workdir,
        BUILD,
        layout,
        QUERY_NAMES,
        raw_lines=valid + sum(outcomes.values()),
        valid_lines=valid,
        quarantine=outcomes,
        result_rows=lambda query: (
            [{c: row[c] for c in QUERIES[query].columns} for row in rows[query]] if query in rows else None
        ),
    )


def _check_catalogue(con, path) -> None:
    """The catalogue rules the oracle enforces (a bad catalogue is an error, not quarantine)."""
    bad = con.execute(f"""SELECT product, category, unit_cost FROM raw_catalogue
        WHERE product IS NULL OR category IS NULL OR unit_cost IS NULL
           OR NOT regexp_full_match(unit_cost, {_literal(PRICE_PATTERN)}) LIMIT 1""").fetchall()
    if bad:
        raise ValueError(f"{path}: bad catalogue row {bad[0]!r}")
    twice = con.execute("SELECT product FROM raw_catalogue GROUP BY product HAVING count(*) > 1 LIMIT 1").fetchall()
    if twice:
        raise ValueError(f"{path}: product {twice[0][0]!r} is listed twice")


def _check_shipments(con) -> None:
    bad = con.execute(f"""SELECT order_id, product, ship_time FROM raw_shipments
        WHERE order_id IS NULL OR product IS NULL OR ship_time IS NULL
           OR NOT regexp_full_match(ship_time, {_literal(SHIP_TIME)})
           OR TRY_CAST(ship_time AS TIMESTAMP) IS NULL LIMIT 1""").fetchall()
    if bad:
        raise ValueError(f"bad shipment row {bad[0]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.baselines.duckdb_batch",
        description="The DuckDB baseline of `lab bench`: every query in DuckDB SQL over the input's CSV files; "
        "writes WORKDIR/results/duckdb/.",
    )
    parser.add_argument(
        "--input", required=True, help="input directory (sales *.csv, optional catalogue/ and shipments/)"
    )
    parser.add_argument("--workdir", required=True, help="results go to WORKDIR/results/duckdb/")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: DuckDB's, one per core)")
    args = parser.parse_args(argv)
    status = run_duckdb(args.input, args.workdir, WorkloadSettings.from_env(), threads=args.threads)
    for query, state in status.items():
        print(f"{query:18} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
