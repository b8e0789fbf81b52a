"""The commit log, the sequence map and the latency reader (no Spark)."""

import csv
import json
import pickle
import threading

import pytest

from experiments.harness.latency import (
    EmittedUnit,
    first_covering,
    latency_frame,
    max_seq_decreases,
    read_emitted_units,
    read_latencies,
    unit_latencies,
)
from experiments.inputs.schedule import LOG_COLUMNS, LOG_CSV_NAME, LOG_JSON_NAME
from shared.commit_log import COMMIT_COLUMNS, Commit, CommitLog, commit_log_path, read_commits
from shared.sequence import SeqRange, SequenceMap, SequenceOrderError, UnknownSalesFileError, batch_max_seq

HEADER = "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address"


# --- the appender -------------------------------------------------------------------------


def test_threads_append_whole_rows_under_one_header(tmp_path):
    path = commit_log_path(tmp_path, "kappa")
    threads_n, rows_each = 8, 50

    def append(thread):
        log = CommitLog(path)  # one instance per thread: the lock is per path, not per instance
        for i in range(rows_each):
            log.append(f"q{thread}", max_seq=i, rows=thread * 1000 + i, visible_at=1_700_000_000.5 + i)

    threads = [threading.Thread(target=append, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(COMMIT_COLUMNS)
    assert lines.count(lines[0]) == 1
    commits = read_commits(path)
    assert len(commits) == threads_n * rows_each
    for thread in range(threads_n):
        mine = [c for c in commits if c.query == f"q{thread}"]
        assert [c.max_seq for c in mine] == list(range(rows_each))  # one thread's rows keep their order
        assert [c.rows for c in mine] == [thread * 1000 + i for i in range(rows_each)]


def test_rows_parse_back_with_millisecond_times(tmp_path):
    log = CommitLog.for_build(tmp_path, "lambda")
    log.append_many(
        ["city_revenue", "daily_revenue"],
        max_seq=41,
        rows={"city_revenue": 3, "daily_revenue": 7},
        visible_at=1_700_000_000.12345,
    )
    log.append("city_revenue", max_seq=-1, rows=0, visible_at=1_700_000_001)
    assert log.path == tmp_path / "commits" / "lambda.csv"
    assert log.path.read_text().splitlines()[1] == "city_revenue,1700000000.123,41,3"
    assert read_commits(log.path) == [
        Commit("city_revenue", 1_700_000_000.123, 41, 3),
        Commit("daily_revenue", 1_700_000_000.123, 41, 7),
        Commit("city_revenue", 1_700_000_001.0, -1, 0),
    ]


def test_visible_at_defaults_to_now(tmp_path, monkeypatch):
    monkeypatch.setattr("shared.commit_log.time.time", lambda: 1234.5678)
    commit = CommitLog(tmp_path / "c.csv").append("q", max_seq=0, rows=1)
    assert commit.visible_at == 1234.5678
    assert read_commits(tmp_path / "c.csv")[0].visible_at == 1234.568


def test_log_pickles_and_clears(tmp_path):
    log = pickle.loads(pickle.dumps(CommitLog(tmp_path / "c.csv")))  # DStream checkpoints pickle it
    log.append("q", max_seq=0, rows=1, visible_at=1.0)
    log.clear()
    assert log.read() == []
    log.append("q", max_seq=0, rows=1, visible_at=1.0)
    assert len(log.path.read_text().splitlines()) == 2  # a new header after clearing


def test_a_foreign_file_is_refused(tmp_path):
    (tmp_path / "c.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="columns"):
        read_commits(tmp_path / "c.csv")


# --- the sequence map ---------------------------------------------------------------------


def _write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_static_directory_is_numbered_in_name_order(tmp_path):
    # raw lines as shared/raw_lines counts them: a BOM is not a line, \r\n is one ending,
    # a last line without an ending counts, repeated headers and blank lines count
    _write(tmp_path / "b.csv", f'{HEADER}\r\n1,x,1,1,04/19/19 08:46,"a, b, OR 97035"\r\n,,,,,')  # 3 lines
    _write(tmp_path / "a.csv", f"\ufeff{HEADER}\n{HEADER}\n")  # 2 lines
    _write(tmp_path / "c.csv", "")  # 0 lines
    _write(tmp_path / "d.csv", f"{HEADER}\n")  # 1 line
    _write(tmp_path / "_ignored.csv", f"{HEADER}\n")
    sequence = SequenceMap(tmp_path)
    assert sequence.range_of("a.csv") == SeqRange(0, 1)
    assert sequence.range_of("b.csv") == SeqRange(2, 4)
    assert sequence.range_of("c.csv") == SeqRange(5, 4)  # empty: last = first - 1
    assert sequence.range_of("c.csv").lines == 0
    assert sequence.range_of(f"file:{tmp_path}/d.csv") == SeqRange(5, 5)
    assert sequence.max_seq(["a.csv"]) == 1
    assert sequence.max_seq(["c.csv", "a.csv"]) == 4  # an empty file covers what precedes it
    assert sequence.max_seq([]) is None
    with pytest.raises(UnknownSalesFileError):
        sequence.range_of("_ignored.csv")


def test_growing_landing_directory_is_rescanned_and_counted_once(tmp_path, monkeypatch):
    counted = []
    import shared.sequence as S

    real_count = S.count_raw_lines
    monkeypatch.setattr(S, "count_raw_lines", lambda path: counted.append(path.name) or real_count(path))

    _write(tmp_path / "000000-april.csv", f"{HEADER}\nx\n")
    sequence = SequenceMap(tmp_path)
    assert sequence.range_of("000000-april.csv") == SeqRange(0, 1)
    _write(tmp_path / "000001-empty.csv", "")
    _write(tmp_path / "000002-may 2019.csv", f"{HEADER}\nx\ny\n")
    assert sequence.range_of("000002-may%202019.csv") == SeqRange(2, 4)  # a URI's escapes
    assert sequence.range_of("000001-empty.csv") == SeqRange(2, 1)
    assert batch_max_seq(sequence, ["000001-empty.csv"], previous=1) == 1
    assert batch_max_seq(sequence, ["000001-empty.csv", "000002-may 2019.csv"], previous=1) == 4
    assert batch_max_seq(sequence, [], previous=None) is None
    assert counted == ["000000-april.csv", "000001-empty.csv", "000002-may 2019.csv"]

    _write(tmp_path / "000000-early.csv", "x\n")  # sorts before numbered files
    with pytest.raises(SequenceOrderError):
        sequence.range_of("000000-early.csv")


def test_a_file_copied_in_place_or_gone_is_reported_and_stops_nothing(tmp_path):
    """A landing directory fed by a non-atomic copy: a file that grows after it was read is
    reported once (after the next batch, and at the end), a file gone before it was read is
    reported and counts no line; numbering goes on."""
    import os

    warnings = []
    _write(tmp_path / "000000-a.csv", f"{HEADER}\nx\n")
    _write(tmp_path / "000001-b.csv", f"{HEADER}\n")
    sequence = SequenceMap(tmp_path, on_warning=warnings.append)
    assert sequence.max_seq(["000000-a.csv", "000001-b.csv"]) == 2
    with open(tmp_path / "000001-b.csv", "a") as handle:  # the copy was not finished
        handle.write("y\nz\n")
    os.utime(tmp_path / "000001-b.csv", ns=(1, 1))
    assert sequence.check_recent() == ["000001-b.csv"]
    assert len(warnings) == 1 and "000001-b.csv changed (73 -> 77 bytes) after it was read" in warnings[0]
    assert "renaming them into the directory" in warnings[0]
    assert sequence.changed_files() == [] and len(warnings) == 1  # once

    _write(tmp_path / "000002-c.csv", f"{HEADER}\n")
    _write(tmp_path / "000003-d.csv", f"{HEADER}\nx\n")
    (tmp_path / "000002-c.csv").unlink()  # listed by a batch, gone before reading
    assert sequence.max_seq(["000002-c.csv", "000003-d.csv"]) == 4
    assert "000002-c.csv disappeared between listing and reading" in warnings[1]
    (tmp_path / "000000-a.csv").unlink()  # gone after it was read: keeps its numbers
    _write(tmp_path / "000004-e.csv", "x\n")
    assert sequence.range_of("000004-e.csv") == SeqRange(5, 5)
    assert sequence.changed_files() == ["000000-a.csv"] and "disappeared after it was read" in warnings[2]


def test_files_after_the_one_a_batch_read_are_not_counted_yet(tmp_path, monkeypatch):
    """They may still be arriving: each is counted once a batch names it (or one after it)."""
    counted = []
    import shared.sequence as S

    real_count = S.count_raw_lines
    monkeypatch.setattr(S, "count_raw_lines", lambda path: counted.append(path.name) or real_count(path))
    for name in ("000000-a.csv", "000001-b.csv", "000002-c.csv"):
        _write(tmp_path / name, "x\n")
    sequence = SequenceMap(tmp_path)
    assert sequence.max_seq(["000000-a.csv"]) == 0 and counted == ["000000-a.csv"]
    assert sequence.max_seq(["000002-c.csv"]) == 2 and counted == ["000000-a.csv", "000001-b.csv", "000002-c.csv"]


# --- the latency reader -------------------------------------------------------------------

RATE = 100.0  # lines per second
START = 1_700_000_000.0
LINES_PER_UNIT = 50  # one unit every 0.5 s
UNITS = 10


def _write_replay_log(directory):
    """A replayer's log at a known rate: unit k holds lines 50k..50k+49, due at k/2 s."""
    directory.mkdir()
    with open(directory / LOG_CSV_NAME, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LOG_COLUMNS)
        for unit in range(UNITS):
            first = unit * LINES_PER_UNIT
            intended = first / RATE
            writer.writerow(
                [
                    unit,
                    first,
                    first + LINES_PER_UNIT - 1,
                    LINES_PER_UNIT,
                    f"{unit}.csv",
                    f"{unit:06d}-{unit}.csv",
                    f"{intended:.6f}",
                    f"{intended + 0.01:.6f}",
                ]
            )
    (directory / LOG_JSON_NAME).write_text(json.dumps({"start_epoch_s": START, "rate_lines_per_second": RATE}))


def _commit_log(path):
    """A build committing every second: each commit covers the units due at least 0.3 s
    before it (so `city` commits at 1, 2, 3, 4 s; `daily` only twice and never covers the
    last unit). Written out of time order on purpose."""
    log = CommitLog(path)
    covered = lambda at: max(u for u in range(UNITS) if u * 0.5 <= at - 0.3) * LINES_PER_UNIT + LINES_PER_UNIT - 1
    for at in (4.0, 1.0, 2.0, 3.0, 5.0):
        log.append("city", max_seq=covered(at), rows=3, visible_at=START + at)
    log.append("daily", max_seq=covered(1.0), rows=1, visible_at=START + 1.0)
    log.append("daily", max_seq=covered(3.0), rows=2, visible_at=START + 3.0)
    return path


def test_units_get_their_first_covering_commit(tmp_path):
    _write_replay_log(tmp_path / "replay")
    rows = read_latencies(tmp_path / "replay", _commit_log(tmp_path / "commits.csv"))
    units = read_emitted_units(tmp_path / "replay")
    assert [u.intended_at for u in units] == [START + k * 0.5 for k in range(UNITS)]

    city = [r for r in rows if r.query == "city"]
    assert len(city) == UNITS and [r.unit for r in city] == list(range(UNITS))  # each unit once
    expected_visible = {0: 1.0, 1: 1.0, 2: 2.0, 3: 2.0, 4: 3.0, 5: 3.0, 6: 4.0, 7: 4.0, 8: 5.0, 9: 5.0}
    for row in city:
        assert row.visible_at == START + expected_visible[row.unit]
        assert row.latency_s == row.visible_at - row.intended_at  # exactly, no rounding
        assert row.visible_at > row.intended_at  # commits after emission
    assert city[-1].visible_at is not None  # the last commit covers the last unit

    daily = {r.unit: r for r in rows if r.query == "daily"}
    assert daily[0].visible_at == START + 1.0 and daily[5].visible_at == START + 3.0
    assert daily[6].visible_at is None and daily[6].latency_s is None  # never covered: reported
    assert len(daily) == UNITS
    assert latency_frame(rows)["latency_s"].isna().sum() == 4


def test_first_covering_uses_the_running_maximum():
    commits = [Commit("q", 1.0, 10, 1), Commit("q", 2.0, 5, 1), Commit("q", 3.0, 20, 1)]
    found = first_covering(commits, [0, 10, 11, 20, 21])
    assert [c and c.visible_at for c in found] == [1.0, 1.0, 3.0, 3.0, None]
    assert max_seq_decreases(commits) == [(commits[0], commits[1])]
    assert max_seq_decreases(commits[::2]) == []


def test_empty_units_and_results_without_lines():
    units = [EmittedUnit(0, 0, -1, 10.0), EmittedUnit(1, 0, 4, 11.0)]  # an empty first file
    rows = unit_latencies(units, [Commit("q", 10.5, -1, 0), Commit("q", 12.0, 4, 2)])
    assert [(r.unit, r.visible_at) for r in rows] == [(0, 10.5), (1, 12.0)]


def test_synthetic_commit_log_never_goes_backwards(tmp_path):
    assert max_seq_decreases(read_commits(_commit_log(tmp_path / "commits.csv"))) == []


# --- the builds' pure helpers -------------------------------------------------------------


def test_sequence_map_pickles_with_its_counts(tmp_path):
    _write(tmp_path / "000000-a.csv", "x\ny\n")
    sequence = SequenceMap(tmp_path)
    sequence.range_of("000000-a.csv")
    copy = pickle.loads(pickle.dumps(sequence))  # a DStream checkpoint pickles it
    assert copy.range_of("000000-a.csv") == SeqRange(0, 1)


def test_speed_layer_reads_whole_master_versions_from_delta_offsets():
    from shared.delta_versions import DELTA_END_INDEX, delta_versions_through

    offset = lambda version, index: json.dumps(
        {
            "sourceVersion": 1,
            "reservoirId": "x",
            "reservoirVersion": version,
            "index": index,
            "isStartingVersion": False,
        }
    )
    assert delta_versions_through(offset(7, DELTA_END_INDEX)) == 7  # all of version 7 read
    assert delta_versions_through(offset(8, -1)) == 7  # none of 8 yet
    assert delta_versions_through(offset(8, -100)) == 7
    assert delta_versions_through(offset(8, 3)) == 7  # part of 8: not claimed


def test_a_clean_lines_reader_has_read_through_a_version_once_a_committed_batch_read_it(tmp_path):
    """When a Kappa drain may stop the stateful queries that run beside the log."""
    from kappa.app import has_read_through

    checkpoint = tmp_path / "window_revenue"
    assert has_read_through(str(checkpoint), 0)  # no batch: only the empty creation commit exists
    assert not has_read_through(str(checkpoint), 1)  # version 1 holds lines nobody read yet

    def plan(batch_id: int, version: int, index: int, committed: bool) -> None:
        for folder in ("offsets", "commits"):
            (checkpoint / folder).mkdir(parents=True, exist_ok=True)
        offset = {
            "sourceVersion": 1,
            "reservoirId": "x",
            "reservoirVersion": version,
            "index": index,
            "isStartingVersion": False,
        }
        (checkpoint / "offsets" / str(batch_id)).write_text(f'v1\n{{}}\n{json.dumps(offset)}\n{{"logOffset":0}}\n')
        if committed:
            (checkpoint / "commits" / str(batch_id)).write_text("v1\n{}\n")

    plan(0, 2, -1, committed=True)  # batch 0 read versions up to 1
    assert has_read_through(str(checkpoint), 1) and not has_read_through(str(checkpoint), 2)
    plan(1, 3, -1, committed=False)  # planned, not committed: its writes may not be in
    assert not has_read_through(str(checkpoint), 2)
    plan(1, 3, -1, committed=True)
    assert has_read_through(str(checkpoint), 2)


def test_lambda_master_seq_side_log(tmp_path):
    from lambda_arch.layout import LambdaConfig
    from lambda_arch.master_dataset import master_seq_log, max_seq_through

    config = LambdaConfig(input_dir=str(tmp_path), workdir=str(tmp_path / "w"))
    assert max_seq_through(config, 5) == -1
    master_seq_log(config).record(0, 0, 99)
    master_seq_log(config).record(1, 1, 149)
    master_seq_log(config).record(2, 1, 160)  # no valid lines: no new master version
    assert [max_seq_through(config, v) for v in (-1, 0, 1, 2)] == [-1, 99, 160, 160]
