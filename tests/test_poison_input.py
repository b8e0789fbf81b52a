"""Input that must not stop a stream (docs/data-rules.md, "Bytes, not text"): a runaway line
of megabytes, a file that is not text, a file gone between listing and reading. Each is
read, quarantined with its reason, or skipped and reported; none raises."""

from collections import Counter

from experiments.reference.oracle import classify_line, compute
from legacy_dstream.parsing import parse_line
from shared.settings import HEADER

HEADER_LINE = ",".join(HEADER)
GOOD = '176558,USB-C Charging Cable,2,11.95,04/19/19 08:46,"917 1st St, Dallas, TX 75001"'
RUNAWAY = "a," * 4_000_000  # 8 MB, four million commas: one line


def test_a_line_of_megabytes_is_one_too_long_line_for_every_parser(spark, tmp_path):
    from experiments.baselines.duckdb_batch import classify_texts
    from shared.cleaning import classify_lines, line_accounting, quarantined_lines

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(f"{HEADER_LINE}\n{GOOD}\n{RUNAWAY}\n{GOOD}\n")
    classified = classify_lines(spark.read.text(str(tmp_path / "in")))
    assert {r["outcome"]: r["lines"] for r in line_accounting(classified).collect()} == {
        "valid": 2,
        "header": 1,
        "too_long": 1,
    }
    (kept,) = quarantined_lines(classified).where("reason = 'too_long'").collect()
    assert kept["raw_line"] == RUNAWAY  # whole, nothing lost
    oracle = compute(tmp_path / "in")
    assert (oracle.valid_lines, oracle.quarantine["too_long"]) == (2, 1)
    assert parse_line(RUNAWAY) == (None, "too_long") and classify_line(RUNAWAY) == (None, "too_long")
    assert [row["reason"] for row in classify_texts([RUNAWAY, GOOD])] == ["too_long", None]


def test_a_line_that_is_not_utf8_is_kept_escaped_in_the_quarantine(spark, tmp_path):
    from shared.cleaning import classify_lines, quarantined_lines
    from shared.raw_lines import escaped, iter_raw_line_bytes

    (tmp_path / "in").mkdir()
    data = f"{GOOD}\n".encode() + GOOD.replace("Dallas", "San José").encode("cp1252") + b"\n\x00\xff\\x\n"
    (tmp_path / "in" / "a.csv").write_bytes(data)
    classified = classify_lines(spark.read.text(str(tmp_path / "in")))
    kept = sorted(r["raw_line"] for r in quarantined_lines(classified).where("reason = 'not_utf8'").collect())
    expected = sorted(escaped(line) for line in iter_raw_line_bytes(tmp_path / "in" / "a.csv") if line != GOOD.encode())
    assert kept == expected and "San Jos\\xe9, TX" in kept[1] and kept[0] == "\x00\\xff\\x"


def test_a_file_gone_between_listing_and_reading_is_skipped_not_a_failure(spark, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("000000-a.csv", "000001-b.csv"):
        (tmp_path / "in" / name).write_text(f"{HEADER_LINE}\n{GOOD}\n")
    listed = spark.read.text(str(tmp_path / "in"))  # the files are listed here, read at collect
    (tmp_path / "in" / "000001-b.csv").unlink()
    assert Counter(row["value"] for row in listed.collect()) == {HEADER_LINE: 1, GOOD: 1}
