"""The three implementations of docs/data-rules.md agree line by line: Spark SQL
(shared.cleaning), the legacy build's Python parser and the oracle's; and, on files as
spreadsheet programs save them, Spark's line reader and the oracle's count the same lines."""

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest

from experiments.reference.oracle import classify_line, compute, read_raw_lines
from legacy_dstream.parsing import parse_line
from tests.raw_line_cases import BOM, CASES, GOOD, HEADER_LINE, ORDER_LINE_FIELDS

EPOCH = dt.datetime(1970, 1, 1)


@pytest.fixture(scope="module")
def spark_rows(spark):
    from shared.cleaning import classify_lines

    df = spark.createDataFrame([(i, text) for i, (text, _) in enumerate(CASES)], "i int, value string")
    return {r["i"]: r.asDict() for r in with_epoch_micros(classify_lines(df)).collect()}


def with_epoch_micros(classified):
    """Adds order_ts as microseconds since the epoch: the instant itself, which neither the
    session's nor the machine's time zone can shift on its way to Python."""
    from pyspark.sql import functions as F

    return classified.withColumn("order_ts_micros", F.unix_micros("order_ts"))


def utc_wall_clock(epoch_micros: int | None) -> dt.datetime | None:
    """The naive UTC datetime the oracle and the legacy parser use for an instant."""
    return None if epoch_micros is None else EPOCH + dt.timedelta(microseconds=epoch_micros)


def spark_order_line(row: dict) -> dict:
    values = {f: row[f] for f in ORDER_LINE_FIELDS}
    values["order_ts"] = utc_wall_clock(row["order_ts_micros"])  # not Spark's local-time datetime
    return values


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[1] or "valid" for c in CASES])
def test_three_parsers_agree(index, spark_rows):
    text, expected_reason = CASES[index]
    oracle_record, oracle_reason = classify_line(text)
    legacy_record, legacy_reason = parse_line(text)
    spark_row = spark_rows[index]
    assert oracle_reason == expected_reason
    assert legacy_reason == expected_reason
    assert spark_row["reason"] == expected_reason
    if expected_reason is None:
        as_oracle = {f: oracle_record[f] for f in ORDER_LINE_FIELDS}
        assert as_oracle == legacy_record._asdict()
        assert spark_order_line(spark_row) == as_oracle
        assert as_oracle["order_ts"] is not None


def test_valid_values_are_exact(spark_rows):
    record, _ = parse_line(CASES[27][0])
    assert record.product == 'Cable "XL"' and record.quantity == 3
    assert record.price == Decimal("2.50") and record.revenue == Decimal("7.50")
    assert record.order_ts == dt.datetime(2020, 2, 29, 23, 59)
    assert (record.city, record.state, record.zip) == ("Portland", "ME", "04101")
    trimmed, _ = parse_line(CASES[28][0])
    assert trimmed.order_id == "7" and trimmed.product == "AA Batteries (4-pack)"
    assert trimmed.order_ts == dt.datetime(2099, 12, 31, 0, 0)


def test_spark_timestamps_are_utc(spark):
    from pyspark.sql import functions as F

    from shared.cleaning import classify_lines

    df = spark.createDataFrame([(GOOD,)], "value string")
    row = classify_lines(df).select(F.date_format("order_ts", "yyyy-MM-dd HH:mm:ss").alias("t")).first()
    assert row["t"] == "2019-04-19 08:46:00"


# ---------------------------------------------------------------------------------------
# Whole files as spreadsheet programs save them: each parser reads them its own way
# ---------------------------------------------------------------------------------------

BAD_QUANTITY = '176560,iPhone,two,700,04/19/19 09:00,"1 A St, Dallas, TX 75001"'
SPREADSHEET_FILES = {
    # A byte-order mark, \r\n line ends and no line end after the last line.
    "2019-04.csv": BOM
    + HEADER_LINE
    + "\r\n"
    + GOOD
    + "\r\n,,,,,\r\n"
    + '176559,iPhone,1,700,04/07/19 22:30,"682 Chestnut St, Boston, MA 02215"',
    "2019-05.csv": "",  # empty
    "2019-06.csv": BOM + HEADER_LINE,  # header only, no line end
    "2019-07.csv": HEADER_LINE + "\r\n",  # header only
    "2019-08.csv": BOM,  # nothing but the mark: no lines at all
    "2019-09.csv": BOM + BOM + HEADER_LINE + "\r\n",  # a mark for the reader, one for the parser
    # Two exports concatenated byte for byte: the second's mark opens a line mid-file.
    "2019-10.csv": HEADER_LINE + "\n" + GOOD + "\n" + BOM + HEADER_LINE + "\r\n" + BAD_QUANTITY + "\rx\r\r\n",
}
# Files that are not UTF-8: a Windows-1252 export (its accented line is not_utf8, the rest of
# the file is read as usual) and stray binary bytes (each line holds 0xFF: not_utf8).
NOT_UTF8_FILES = {
    "2019-11.csv": (
        HEADER_LINE + "\r\n" + GOOD.replace("Dallas, TX 75001", "San José, CA 95113") + "\r\n" + GOOD + "\r\n"
    ).encode("cp1252"),
    "2019-12.csv": b"\x00\x01\xff\xfe,,,,,\n\xc3\x28\x80\rPK\x03\x04\xff\xed\xa0\x80\n\xf0\x9f\x98",
}
SPREADSHEET_ACCOUNTING = {"valid": 4, "header": 7, "blank": 2, "bad_quantity": 1, "field_count": 1, "not_utf8": 5}


@pytest.fixture(scope="module")
def spreadsheet_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spreadsheet")
    for name, text in SPREADSHEET_FILES.items():
        (folder / name).write_bytes(text.encode("utf-8"))
    for name, data in NOT_UTF8_FILES.items():
        (folder / name).write_bytes(data)
    return folder


def test_spreadsheet_files_are_read_alike_by_spark_and_the_oracle(spark, spreadsheet_dir):
    """Spark's text source (the file-source builds; textFileStream reads files the same way)
    and the oracle's reader agree on every raw line (bytes that are not UTF-8 decoded to
    U+FFFD alike); then every parser agrees on its outcome and on the valid lines' values."""
    from shared.cleaning import classify_lines, line_accounting

    raw = spark.read.text(str(spreadsheet_dir))
    from pyspark.sql import functions as F

    from shared.raw_lines import iter_raw_line_bytes

    # the same bytes, line by line (as text, the JVM and Python may write a different number
    # of U+FFFD for one bad sequence: no rule depends on how many)
    spark_bytes = sorted(bytes.fromhex(row[0]) for row in raw.select(F.hex("value")).collect())
    assert spark_bytes == sorted(line for path in spreadsheet_dir.iterdir() for line in iter_raw_line_bytes(path))
    spark_lines = sorted(row["value"] for row in raw.collect())  # decoded as textFileStream gives them
    oracle_lines = [text for _name, text in read_raw_lines(spreadsheet_dir)]
    assert [line for line in spark_lines if "\ufffd" not in line] == sorted(
        t for t in oracle_lines if "\ufffd" not in t
    )
    assert BOM + HEADER_LINE in oracle_lines and BOM not in oracle_lines  # only mid-file marks remain

    classified = with_epoch_micros(classify_lines(raw))
    spark_accounting = {row["outcome"]: row["lines"] for row in line_accounting(classified).collect()}
    oracle = compute(spreadsheet_dir)
    oracle_accounting = {"valid": oracle.valid_lines, **{r: n for r, n in oracle.quarantine.items() if n}}
    legacy_accounting = Counter(parse_line(text)[1] or "valid" for text in spark_lines)
    assert spark_accounting == oracle_accounting == dict(legacy_accounting) == SPREADSHEET_ACCOUNTING
    assert oracle.raw_lines == len(spark_lines) == sum(SPREADSHEET_ACCOUNTING.values())

    def ordered(lines):
        return sorted(lines, key=lambda line: tuple(str(line[f]) for f in ORDER_LINE_FIELDS))

    spark_valid = [spark_order_line(row.asDict()) for row in classified.where("reason IS NULL").collect()]
    oracle_valid = [line for line, _ in map(classify_line, oracle_lines) if line is not None]
    legacy_valid = [line._asdict() for line, _ in map(parse_line, spark_lines) if line is not None]
    assert ordered(spark_valid) == ordered(oracle_valid) == ordered(legacy_valid)
    assert len(oracle_valid) == SPREADSHEET_ACCOUNTING["valid"]
