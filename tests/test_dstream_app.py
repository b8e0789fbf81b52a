"""The legacy DStream application around the pipeline: how it lands the input in groups,
numbers it, knows it is finished, and what a drain leaves behind (exports, accounting,
commit log, quality reports)."""

import datetime as dt
import json
import pickle
import threading
import time
from pathlib import Path

import pytest

from legacy_dstream import app, publish
from legacy_dstream.config import UNSUPPORTED, DStreamConfig, follow_config
from legacy_dstream.landing import (
    Landing,
    LandingFile,
    feed_groups,
    file_groups,
    landing_plan,
    landing_ranges,
    seconds_to_next_tick,
)
from shared.catalogue import QUERY_NAMES
from shared.commit_log import CommitLog, read_commits
from shared.export import export_path, read_accounting
from shared.sequence import SeqRange, SequenceMap, SequenceOrderError

HEADER = "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address"


def _landing_files(lines_per_file):
    return [LandingFile(Path(f"/in/s{i}.csv"), f"{i:06d}-s{i}.csv", n) for i, n in enumerate(lines_per_file)]


def test_files_are_grouped_by_lines_without_splitting_a_file():
    plan = _landing_files([40, 70, 10, 0, 100, 5])
    groups = file_groups(plan, 100)
    assert [[f.lines for f in group] for group in groups] == [[40, 70], [10, 0, 100], [5]]
    assert [f for group in groups for f in group] == plan
    assert file_groups(plan, 1) == [[plan[0]], [plan[1]], [plan[2]], [plan[3], plan[4]], [plan[5]]]
    assert file_groups([], 100) == []
    assert file_groups(plan, 100, files_per_batch=4) == [plan[:4], plan[4:]]


def test_next_tick_is_on_the_streaming_timer_grid():
    assert seconds_to_next_tick(1.0, now=100.25) == pytest.approx(0.75)
    assert seconds_to_next_tick(0.5, now=100.5) == pytest.approx(0.5)  # on a tick: the next one
    assert seconds_to_next_tick(2.0, now=101.0) == pytest.approx(1.0)


def test_landing_plan_numbers_lines_like_the_sequence_map_of_the_landing_directory(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "b.csv").write_text(f"{HEADER}\n1\n2\n")
    (source / "a.csv").write_text(f"\ufeff{HEADER}\r\n1\r\n2")  # BOM, CRLF, no final line end
    (source / "c.csv").write_text("")
    plan = landing_plan(sorted(source.glob("*.csv")))
    assert [(f.name, f.lines) for f in plan] == [("000000-a.csv", 3), ("000001-b.csv", 3), ("000002-c.csv", 0)]
    landing = tmp_path / "landing"
    feed_groups([plan], landing, 0.1, threading.Event())
    ranges = landing_ranges(plan)
    sequence = SequenceMap(landing)
    assert {name: sequence.range_of(name) for name in ranges} == ranges


def test_a_source_changed_or_gone_before_it_lands_is_reported_and_the_feed_goes_on(tmp_path, capsys):
    import os

    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (source / name).write_text(f"{HEADER}\n1\n")
    plan = landing_plan(sorted(source.glob("*.csv")))
    with open(source / "b.csv", "a") as handle:  # a copy in place that was still running
        handle.write("2\n")
    os.utime(source / "b.csv", ns=(1, 1))
    (source / "c.csv").unlink()
    landing = tmp_path / "landing"
    feed_groups([plan], landing, 0.1, threading.Event())
    assert (landing / "000001-b.csv").read_text() == f"{HEADER}\n1\n2\n"  # landed as it is now
    assert (landing / "000002-c.csv").read_bytes() == b""  # lands empty: the drain ends
    said = capsys.readouterr().err
    assert "b.csv changed after it was counted" in said and "c.csv disappeared before it was landed" in said
    gone = landing_plan([source / "gone.csv"])
    assert [(f.name, f.lines, f.counted_as) for f in gone] == [("000000-gone.csv", 0, None)]


def test_groups_land_whole_one_tick_apart(tmp_path):
    sources = []
    for i in range(5):
        path = tmp_path / "in" / f"s{i}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{HEADER}\n{i}\n")
        sources.append(path)
    plan = landing_plan(sources)
    groups = file_groups(plan, 4)  # two files (4 lines) a group: 3 groups
    landing = tmp_path / "landing"
    interval = 0.2
    feed_groups(groups, landing, interval, threading.Event())
    assert sorted(p.name for p in landing.iterdir()) == [f.name for f in plan]  # no temp file left
    assert all((landing / f.name).read_bytes() == f.source.read_bytes() for f in plan)
    landed = [[(landing / f.name).stat().st_mtime for f in group] for group in groups]
    for before, after in zip(landed, landed[1:]):
        # a tick passed between two groups, so textFileStream reads them in different batches
        assert min(after) >= max(before) + seconds_to_next_tick(interval, max(before))


def test_feeding_stops_when_asked(tmp_path):
    source = tmp_path / "s.csv"
    source.write_text(f"{HEADER}\n")
    groups = file_groups(landing_plan([source, source, source]), 1)
    stop = threading.Event()
    stop.set()
    feed_groups(groups, tmp_path / "landing", 5.0, stop)
    assert list((tmp_path / "landing").iterdir()) == []


def test_the_checkpoint_holds_only_the_way_to_the_running_drain(tmp_path):
    drain = app._Drain(CommitLog(tmp_path / "c.csv"), {"000000-a.csv": SeqRange(0, 9)}, ["city_revenue"])
    outputs = app._Outputs(str(tmp_path / "checkpoint"))
    copy = pickle.loads(pickle.dumps(outputs.totals))  # as the checkpoint pickles a foreachRDD function
    assert copy.__self__ == outputs and "_Drain" not in repr(pickle.dumps(outputs.totals))
    with pytest.raises(RuntimeError, match="no running dstream drain"):
        copy(None, None)
    app._LIVE[outputs.checkpoint] = drain  # as run() registers the drain of its process
    try:
        assert copy.__self__._drain() is drain
    finally:
        app._LIVE.pop(outputs.checkpoint)


def test_a_batch_output_is_keyed_by_its_batch_time_and_read_back_newest_first(tmp_path):
    first = publish.Snapshot(1_000, {1_000: ["000000-a.csv"]}, {"city_revenue": [(("Austin", "TX"), (1, 1))]})
    second = publish.Snapshot(3_000, {1_000: ["000000-a.csv"], 3_000: ["000001-b.csv"]}, {"city_revenue": []})
    first.write(tmp_path)
    second.write(tmp_path)
    first.write(tmp_path)  # a batch run again after a crash overwrites its own output
    assert publish.Snapshot.latest(tmp_path) == second and second.files == {"000000-a.csv", "000001-b.csv"}
    publish.Snapshot(5_000, {}, {}).write(tmp_path)
    assert len(list(tmp_path.glob("batch-*.pickle"))) == 2
    assert publish.Snapshot.latest(tmp_path / "none") is None


def test_a_source_that_grows_after_it_landed_is_reported_once(tmp_path, capsys):
    """A copy in place still running when its file was landed: the lines it gains later
    are read by no batch, so the next scan says so, once; a file left alone says nothing."""
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.csv", "b.csv"):
        (source / name).write_text(f"{HEADER}\n1\n")
    landing = Landing(tmp_path / "landing", source)
    landing.land_all(0.1, threading.Event(), 0)
    with open(source / "b.csv", "a") as handle:
        handle.write("2\n")
    assert landing.check_landed() == ["b.csv"]
    said = capsys.readouterr().err
    assert "b.csv changed after it was landed" in said and "renaming them" in said and "in/a.csv" not in said
    assert landing.check_landed() == [] and capsys.readouterr().err == ""


def test_landing_plans_the_same_names_again_and_new_files_last(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for name, lines in (("a.csv", 3), ("b.csv", 2)):
        (source / name).write_text(HEADER + "\n" + "x\n" * (lines - 1))
    landing = Landing(tmp_path / "landing", source)
    assert landing.planned() == ["000000-a.csv", "000001-b.csv"] and landing.lines() == 5
    assert Landing(tmp_path / "landing", source).planned() == landing.planned()  # a restart
    (source / "c.csv").write_text(HEADER + "\n")
    assert [item.name for item in landing.scan()] == ["000002-c.csv"]
    assert landing.ranges["000002-c.csv"] == SeqRange(5, 5)
    (source / "0-early.csv").write_text(HEADER + "\n")
    with pytest.raises(SequenceOrderError, match="must sort last"):
        landing.scan()


@pytest.fixture(scope="module")
def small_input(tmp_path_factory):
    from experiments.inputs.generate import GeneratorOptions, generate

    root = tmp_path_factory.mktemp("dstream") / "in"
    generate(
        root,
        GeneratorOptions(rows=3000, seed=5, files=3, days=2, spreadsheet_files=1, windows_1252_files=1, binary_files=1),
    )
    return root


def test_a_drain_in_several_batches_matches_the_oracle(spark, small_input, tmp_path):
    from experiments.reference.oracle import run_oracle

    workdir = tmp_path / "w"
    oracle = run_oracle(small_input, workdir)
    config = DStreamConfig(str(small_input), str(workdir), batch_seconds=0.5, lines_per_batch=900)
    plan = landing_plan(sorted(small_input.glob("*.csv")))
    groups = file_groups(plan, config.lines_per_batch)
    assert len(groups) == 3

    started = time.monotonic()
    status = app.run(spark, config)
    elapsed = time.monotonic() - started

    for query in QUERY_NAMES:
        assert status[query] == "written"
        mine, truth = export_path(workdir, "dstream", query), export_path(workdir, "oracle", query)
        assert mine.read_bytes() == truth.read_bytes(), query
    accounting = read_accounting(workdir, "dstream")
    assert accounting == read_accounting(workdir, "oracle")
    assert accounting["balanced"] and accounting["raw_lines"] == oracle.raw_lines

    # one commit per query for each batch that read files; max_seq grows to the last line
    commits = read_commits(workdir / "commits" / "dstream.csv")
    queries = list(QUERY_NAMES)
    batches = [commits[i : i + len(queries)] for i in range(0, len(commits), len(queries))]
    assert len(batches) >= len(groups) and len(commits) == len(batches) * len(queries)
    for batch in batches:
        assert [c.query for c in batch] == queries
        assert len({(c.visible_at, c.max_seq) for c in batch}) == 1
    max_seqs = [batch[0].max_seq for batch in batches]
    assert max_seqs == sorted(max_seqs) and max_seqs[-1] == oracle.raw_lines - 1
    last = {c.query: c.rows for c in batches[-1]}
    for query in queries:
        assert last[query] == len(export_path(workdir, "dstream", query).read_text().splitlines()) - 1

    # what readers query: the Delta table holds the last batch's whole result, one commit per batch
    from shared.delta_log import latest_commit

    served = publish.served(spark, config.results_table)
    per_query = {row["query"]: row["count"] for row in served.groupBy("query").count().collect()}
    assert {q: per_query.get(q, 0) for q in queries} == last
    served_lines = served.where("query = 'line_accounting'").collect()
    assert sum(json.loads(row["row"])["lines"] for row in served_lines) == oracle.raw_lines
    version, _actions = latest_commit(config.results_table)
    assert version == len(batches) - 1

    # the quality gate checked every valid line, one report per batch with valid lines
    quality = json.loads((workdir / "results" / "dstream" / "_quality.json").read_text())
    assert quality["success"] and quality["rows"] == oracle.valid_lines
    assert quality["batches"] == len(batches)
    # finished when the last file was processed, not after timers: well inside the timeout
    assert elapsed < config.timeout_seconds / 10


class _Interrupt(Exception):
    pass


def test_a_run_stopped_after_its_first_batch_resumes_from_its_checkpoint(spark, small_input, tmp_path):
    from experiments.reference.oracle import run_oracle

    workdir = tmp_path / "w"
    run_oracle(small_input, workdir)
    config = DStreamConfig(str(small_input), str(workdir), batch_seconds=0.5, lines_per_batch=900)

    def interrupt(done, total):
        if 0 < done < total:
            raise _Interrupt()

    with pytest.raises(_Interrupt):
        app.run(spark, config, fresh=True, progress=interrupt)
    first = publish.Snapshot.latest(config.output_dir)
    assert first is not None and 0 < len(first.files) < 3 and app.has_checkpoint(config.checkpoint)

    status = app.run(spark, config)  # the same command again: getOrCreate resumes the checkpoint
    assert status["city_revenue"] == "written"
    for query in QUERY_NAMES:
        assert (
            export_path(workdir, "dstream", query).read_bytes() == export_path(workdir, "oracle", query).read_bytes()
        ), query
    assert read_accounting(workdir, "dstream") == read_accounting(workdir, "oracle")
    # the resumed run landed only what the first had not
    assert sorted(p.name for p in config.landing.iterdir()) == Landing(config.landing, small_input).planned()
    max_seqs = [c.max_seq for c in read_commits(config.commit_log) if c.query == "city_revenue"]
    assert max_seqs == sorted(max_seqs)


def test_other_logic_on_a_used_checkpoint_is_refused_before_spark_starts(small_input, tmp_path):
    from shared.checkpoints import CheckpointMismatch

    config = DStreamConfig(str(small_input), str(tmp_path / "w"))
    Path(config.checkpoint).mkdir(parents=True)
    (Path(config.checkpoint) / "checkpoint-1000").write_bytes(b"")
    (Path(config.checkpoint) / "lab-logic.json").write_text(json.dumps({"query": "dstream", "logic": "other"}))
    with pytest.raises(CheckpointMismatch, match="--fresh"):
        app.run(None, config)


@pytest.mark.slow
def test_follow_lands_what_arrives_until_sigterm(small_input, tmp_path):
    from experiments.inputs.replay import replay_to_landing
    from experiments.inputs.stream import count_raw_lines
    from experiments.reference.oracle import run_oracle
    from tests.live import assert_latency_readable, empty_landing, follow_until

    landing = empty_landing(small_input, tmp_path / "landing")
    workdir = tmp_path / "w"
    config = DStreamConfig(str(landing), str(workdir))
    total = sum(count_raw_lines(p) for p in small_input.glob("sales_*.csv"))

    def caught_up() -> bool:
        last = publish.Snapshot.latest(config.output_dir)
        return last is not None and sum(v[0] for _, v in last.totals.get("line_accounting", ())) >= total

    out, _ = follow_until(
        "dstream",
        landing,
        workdir,
        started=lambda: app.has_checkpoint(config.checkpoint),  # idle, batches ticking
        feed=lambda: replay_to_landing(small_input, landing, rate_lines_per_second=1500, log_dir=tmp_path / "replay"),
        caught_up=caught_up,
    )
    assert "city_revenue       written" in out
    oracle = tmp_path / "oracle"
    run_oracle(landing, oracle)
    queries = [q for q in QUERY_NAMES if q not in UNSUPPORTED]
    for query in queries:
        assert export_path(workdir, "dstream", query).read_bytes() == export_path(oracle, "oracle", query).read_bytes()
    assert read_accounting(workdir, "dstream") == read_accounting(oracle, "oracle")
    assert_latency_readable(tmp_path / "replay", workdir, "dstream", queries)


class _CountedState:
    """A state RDD that records the jobs run on it."""

    def __init__(self):
        self.counts = 0

    def count(self):
        self.counts += 1
        return 0


def test_a_batch_without_files_computes_its_state_until_the_run_stops(tmp_path):
    # A state no job computes stays lazy: the next batch with files would compute the chain
    # of every skipped batch's state in one task (the live run that stalled).
    drain = app._Drain(CommitLog(tmp_path / "c.csv"), {"000000-a.csv": SeqRange(0, 9)}, ["city_revenue"])
    state = _CountedState()
    drain.totals(dt.datetime(2026, 1, 1), state)
    assert state.counts == 1 and read_commits(tmp_path / "c.csv") == []
    drain.stop_jobs()
    drain.totals(dt.datetime(2026, 1, 1, 0, 0, 1), state)
    assert state.counts == 1  # stopping: no new job, so none is killed mid-task


def test_a_follow_run_keeps_the_batch_interval_of_a_drain_checkpoint_it_resumes(tmp_path):
    from shared import checkpoints

    config = DStreamConfig(str(tmp_path / "input"), str(tmp_path / "work"))
    assert follow_config(config, False, "drain logic").batch_seconds == config.follow_batch_seconds
    Path(config.checkpoint).mkdir(parents=True)
    checkpoints.check_logic(config.checkpoint, "dstream", "drain logic", "remedy", used=False)  # a drain's
    assert follow_config(config, True, "drain logic").batch_seconds == config.batch_seconds
    assert follow_config(config, True, "other logic").batch_seconds == config.follow_batch_seconds


@pytest.mark.slow
def test_a_restart_is_not_warned_that_it_reuses_the_sessions_context():
    """DStream's restart recovers its StreamingContext from the checkpoint, which asks Spark
    for a context while the build's session has one: Spark's warning about it is expected
    and filtered in shared/log4j2.properties, and only that one (another warning of the
    same logger still shows). In a process of its own: the JVM's stderr is its own."""
    import subprocess
    import sys

    script = (
        "from shared.spark import create_spark_session, stop_spark_session\n"
        "spark = create_spark_session('log-check', ui=False)\n"
        "jvm = spark.sparkContext._jvm\n"
        "jvm.org.apache.spark.SparkContext.getOrCreate(spark.sparkContext._jsc.sc().getConf())\n"
        "jvm.org.apache.logging.log4j.LogManager.getLogger('org.apache.spark.SparkContext')"
        ".warn('another SparkContext warning')\n"
        "stop_spark_session(spark)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "another SparkContext warning" in done.stderr
    assert "Using an existing SparkContext" not in done.stderr
