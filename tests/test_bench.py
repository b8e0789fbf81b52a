"""`lab bench`: the measuring helper, the figures read back from the metrics CSV, the two
baselines against the oracle, and (slow) one end-to-end run."""

from __future__ import annotations

import contextlib
import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from experiments.harness import follow, systems
from experiments.harness.latency import slowest_query_latencies
from experiments.harness.measure import measure_command
from experiments.harness.profiles import bench_profile
from experiments.harness.run_folder import Metric, RunFolder, append_rows, read_metrics
from experiments.inputs.generate import GeneratorOptions, generate
from experiments.reference.oracle import classify_line, run_oracle
from experiments.report import bench_summary
from experiments.report.data import RunData, status_of
from shared.catalogue import QUERY_NAMES
from shared.export import export_path, results_dir

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# Measuring a command
# ---------------------------------------------------------------------------------------

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}: pass\n"


def test_measure_command_counts_cpu_and_memory(tmp_path):
    m = measure_command([sys.executable, "-c", BURN.format(seconds=0.5)], tmp_path / "log")
    assert m.exit_code == 0
    assert m.cpu_s > 0.3
    assert m.peak_rss_mb > 0
    assert m.wall_s >= 0.5


def test_measure_command_keeps_the_cpu_of_children_that_exited(tmp_path):
    """A child burns a second and exits; the parent then idles: its CPU still counts."""
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {BURN.format(seconds=1.0)!r}], check=True)\n"
        "time.sleep(0.6)\n"
    )
    m = measure_command([sys.executable, "-c", parent], tmp_path / "log")
    assert m.exit_code == 0 and m.processes >= 2
    assert m.cpu_s > 0.7  # the child's last reading is at most one 0.2 s sample old


def test_measure_command_never_reads_a_pid_in_use_again(tmp_path):
    """A process seen once whose pid now belongs to something else (psutil says it is not
    running) adds neither CPU nor memory: live runs read 2,057 CPU s over 317 s on 2 cores
    when such pids, reused by JVM threads, were read as the processes they had been."""
    from experiments.harness.measure import MeasuredCommand

    class ReusedPid:
        pid = 1

        def create_time(self):
            return 0.0

        def is_running(self):
            return False

        def oneshot(self):
            return contextlib.nullcontext()

        def cpu_times(self):
            return SimpleNamespace(user=1000.0, system=0.0)

        def status(self):
            return psutil.STATUS_RUNNING

        def memory_info(self):
            return SimpleNamespace(rss=10 * 2**30)

    command = MeasuredCommand([sys.executable, "-c", BURN.format(seconds=0.5)], tmp_path / "log").start()
    command._procs[(1, 0.0)] = ReusedPid()
    m = command.wait()
    assert m.exit_code == 0 and 0.3 < m.cpu_s < 100 and m.peak_rss_mb < 2**10


def test_forked_children_do_not_count_their_parents_pages_again(tmp_path):
    """A process holding 300 MiB forks three children that sleep: the tree holds 300 MiB,
    not the 1,200 MiB its processes' RSS add up to (PySpark's daemon forks its workers so,
    and the JVM starts each subprocess between a fork and an exec)."""
    parent = (
        "import os, time\n"
        "held = b'x' * (300 * 2**20)\n"
        "children = [os.fork() for _ in range(1)]\n"
        "if children[0] == 0:\n"
        "    os.fork(); os.fork(); time.sleep(1.5); os._exit(0)\n"
        "time.sleep(1.5); os.waitpid(children[0], 0)\n"
    )
    m = measure_command([sys.executable, "-c", parent], tmp_path / "log")
    assert m.exit_code == 0 and m.processes >= 4
    assert 290 < m.peak_rss_mb < 420


def test_tree_memory_counts_a_child_between_fork_and_exec_as_its_parent():
    from experiments.harness.measure import Reading, tree_memory

    jvm = Reading(10, 1, "java", rss=4000, vms=9000, pss=None)
    spawning = Reading(11, 10, "java", rss=4000, vms=9000, pss=None)  # the same address space
    daemon = Reading(12, 10, "python3", rss=300, vms=900, pss=120)
    worker = Reading(13, 12, "python3", rss=320, vms=950, pss=140)
    assert tree_memory([jvm, spawning, daemon, worker]) == 4000 + 120 + 140
    assert tree_memory([jvm, Reading(11, 10, "java", 4000, 9100, None)]) == 8000  # a JVM of its own


def test_measure_command_reports_the_exit_code_and_output(tmp_path):
    m = measure_command([sys.executable, "-c", "print('hello'); raise SystemExit(3)"], tmp_path / "log")
    assert m.exit_code == 3
    assert "hello" in (tmp_path / "log").read_text()


def test_a_command_past_its_timeout_is_killed(tmp_path):
    with pytest.raises(TimeoutError):
        measure_command([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log", timeout=1)


# ---------------------------------------------------------------------------------------
# The figures, from a hand-made run folder
# ---------------------------------------------------------------------------------------

WALLS = {
    "spark_batch": (10, 12, 11),
    "kappa": (20, 20, 22),
    "lambda": (25, 30, 22),
    "dstream": (40, 36, 50),
    "duckdb": (2, 3, 4),
}


def _drain_rows(system: str, repeat: int, wall: float, exit_code: int = 0, differing: int = 0) -> list[Metric]:
    common = {"repeat": repeat, "input_lines": 1000}
    verdict = "identical: same bytes" if not differing else f"DIFFERS: {differing} rows"
    return [
        Metric("drain", system, "wall_s", wall, "s", **common),
        Metric("drain", system, "exit_code", exit_code, "code", **common),
        Metric(
            "drain", system, "equivalence", differing, "rows differing", query="city_revenue", detail=verdict, **common
        ),
    ]


@pytest.fixture
def bench_run(tmp_path):
    run = RunFolder.create(tmp_path, "bench")
    run.write_environment({"spark_master": "local[2]", "profile": bench_profile(1000, 3, 7).as_json()})
    rows = [
        m for system, walls in WALLS.items() for i, wall in enumerate(walls) for m in _drain_rows(system, i + 1, wall)
    ]
    rows += _drain_rows("kappa", 4, 1, exit_code=1)  # a failed repeat: left out of the ratios, named as a failure
    run.append(rows)
    return run


def _target(name: str) -> bench_summary.Target:
    return next(t for t in bench_summary.TARGETS if t.name == name)


def test_bench_targets_are_ratios_per_repeat_then_median_and_spread(bench_run):
    data = RunData.load(bench_run.path)
    assert bench_summary.target_line(data, _target("F1")).endswith(": met")  # median of 10/20, 12/20, 11/22: 0.5
    assert "0.50x (0.50-0.60, n=3)" in bench_summary.target_line(data, _target("F1"))  # failed repeat 4 left out
    assert bench_summary.target_line(data, _target("F2")).endswith(": NOT MET")  # median 2.5 > 2
    assert bench_summary.target_line(data, _target("F3")).endswith(": met")  # median 4.0 <= 4
    assert "4.00x (2.75-5.00, n=3)" in bench_summary.target_line(data, _target("F5"))


def test_a_bench_target_without_both_systems_is_not_measured(tmp_path):
    run = RunFolder.create(tmp_path, "bench")
    run.write_environment({"spark_master": "local[2]"})
    run.append(_drain_rows("spark_batch", 1, 10))
    line = bench_summary.target_line(RunData.load(run.path), _target("F5"))
    assert "not measured (needs successful spark_batch and duckdb runs)" in line


def test_the_bench_summary_names_every_failure_and_its_run_folder(bench_run):
    bench_run.append(_drain_rows("dstream", 3, 50, differing=2))
    data = RunData.load(bench_run.path)
    assert bench_summary.failures(data) == [
        "kappa repeat 4: exit code 1",
        "dstream repeat 3, city_revenue: DIFFERS: 2 rows",
    ]
    text = bench_summary.summary(data, "REPORT")
    assert f"lab bench run {bench_run.run_id}: 1,000 raw input lines, Spark master local[2], 4 repeat(s)" in text
    assert "NOT IDENTICAL or failed: kappa repeat 4: exit code 1" in text and text.endswith("report: REPORT")
    assert "11.0 (10.0-12.0, n=3)" in text  # spark_batch wall time: median (min-max)


def test_bench_is_the_drain_step_at_the_size_it_is_given():
    profile = bench_profile(1_000_000, 2, 11)
    assert (profile.name, profile.drain_rows, profile.repeats, profile.seed) == ("bench", 1_000_000, 2, 11)
    assert "1,000,000 generated rows, 2 repeat(s)" in profile.description
    assert "the given input" in bench_profile(0, 1, 7).description


def test_the_live_latency_of_a_unit_is_its_slowest_query(tmp_path):
    from experiments.inputs.schedule import LOG_COLUMNS
    from shared.commit_log import CommitLog, commit_log_path

    replay = tmp_path / "replay"
    replay.mkdir()
    (replay / "replay_summary.json").write_text(json.dumps({"start_epoch_s": 1000.0}))
    with open(replay / "replay_log.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_COLUMNS)
        for unit in range(3):  # 10 lines a unit, one unit a second
            writer.writerow([unit, unit * 10, unit * 10 + 9, 10, f"s{unit}.csv", f"{unit:06d}-s.csv", unit, unit])
    log = CommitLog(commit_log_path(tmp_path, "kappa"))
    log.append("city_revenue", 9, 1, visible_at=1000.5)
    log.append("window_revenue", 19, 1, visible_at=1001.8)  # covers units 0 and 1
    log.append("city_revenue", 19, 1, visible_at=1001.4)
    log.append("city_revenue", 29, 1, visible_at=1002.3)  # unit 2: window_revenue never covers it
    latencies = slowest_query_latencies(replay, commit_log_path(tmp_path, "kappa"), ("city_revenue", "window_revenue"))
    assert latencies == [pytest.approx(1.8), pytest.approx(0.8), None]
    assert not follow.covered_by_all(commit_log_path(tmp_path, "kappa"), ("city_revenue", "window_revenue"), 29)
    assert follow.covered_by_all(commit_log_path(tmp_path, "kappa"), ("city_revenue",), 29)


def test_every_metrics_csv_is_written_and_read_by_one_writer_and_one_reader(tmp_path):
    """Appended under one header, booleans 1/0, floats to 6 significant digits, a file with other
    columns refused."""
    path = tmp_path / "m.csv"
    columns = ("run_id", "build", "identical", "wall_s")
    append_rows(path, columns, [{"run_id": "a", "build": "kappa", "identical": True, "wall_s": 1 / 3}])
    append_rows(path, columns, [{"run_id": "b", "build": "duckdb", "identical": False}])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(columns) and len(lines) == 3
    assert [(r["identical"], r["wall_s"]) for r in read_metrics(path)] == [("1", "0.333333"), ("0", "")]
    assert [r["build"] for r in read_metrics(path, "b")] == ["duckdb"]
    other = tmp_path / "other.csv"
    other.write_text("x,y\n")
    with pytest.raises(ValueError):
        append_rows(other, columns, [{"run_id": "a"}])


# ---------------------------------------------------------------------------------------
# The baselines against the oracle, on an input with every quirk the generator can add
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_input(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    options = GeneratorOptions(
        rows=1500,
        seed=11,
        files=3,
        late_fraction=0.03,
        out_of_order_fraction=0.05,
        duplicate_fraction=0.05,
        malformed_fraction=0.1,
        blank_fraction=0.03,
        repeated_header_fraction=0.02,
        spreadsheet_files=2,
        windows_1252_files=1,
        binary_files=1,
    )
    generate(root / "input", options)
    run_oracle(root / "input", root / "work")
    return root / "input", root / "work"


def _assert_same_as_oracle(workdir: Path, build: str) -> None:
    for query in QUERY_NAMES:
        assert export_path(workdir, build, query).read_bytes() == export_path(workdir, "oracle", query).read_bytes(), (
            query
        )
    accounting = "_accounting.json"
    assert (results_dir(workdir, build) / accounting).read_text() == (
        results_dir(workdir, "oracle") / accounting
    ).read_text()


def test_duckdb_baseline_equals_the_oracle(hostile_input):
    from experiments.baselines.duckdb_batch import run_duckdb

    input_dir, workdir = hostile_input
    status = run_duckdb(input_dir, workdir)
    assert set(status.values()) == {"written"}
    _assert_same_as_oracle(workdir, "duckdb")


def test_duckdb_classifies_every_hand_made_line_as_the_oracle(tmp_path):
    from experiments.baselines.duckdb_batch import classify_texts
    from tests.raw_line_cases import CASES

    extra = [
        '"",  , " ",,,',
        ' "" ,,,,,',
        ",",
        '"',
        '" ",""',
        'a"b,c"d,1,2,04/19/19 08:46,"1 A St, X, TX 75001"',
        '1,iPhone,1,700,04/19/19 08:60,"1 A St, Dallas, TX 75001"',
        '1,x,1,5,04/19/19 23:59,", Dallas, TX 75001"',
        '1,x,1,5,04/19/19 23:59,"1 A St, X, TX 75001, US"',
        '1,x,１,5,04/19/19 23:59,"1 A St, X, TX 75001"',
        'Order ID,Product,Quantity Ordered,Price Each,Order Date,"Purchase Address"',
    ]
    texts = [text for text, _ in CASES] + extra
    for text, row in zip(texts, classify_texts(texts), strict=True):
        line, reason = classify_line(text)
        assert row["reason"] == reason, text
        if line is not None:
            assert {k: row[k] for k in ("order_id", "product", "quantity", "price", "order_ts", "city", "state")} == {
                k: line[k] for k in ("order_id", "product", "quantity", "price", "order_ts", "city", "state")
            }, text


def test_duckdb_reads_raw_lines_as_the_shared_reader(tmp_path):
    import duckdb

    from experiments.baselines.duckdb_batch import _lines_sql
    from shared.raw_lines import iter_raw_lines

    contents = [
        text.encode("utf-8")
        for text in (
            "",
            "\ufeff",
            "\ufeffa",
            "a\n",
            "a\n\n",
            "\r\n",
            "\r",
            "a\r\r\n",
            "a\n\r",
            "a\rb\nc\r\nd",
            "\ufeff\ufeffx\r\n",
            "x\ufeff\n\ufeffy",
            "\n\n\n",
            "é,ü\n€",
        )
    ]
    # not UTF-8: each such line is NULL (not_utf8); the file's other lines are read as text
    contents += [b"\xef\xbb\xbfCaf\xe9\r\nok,\\x41\\\rlast\xff", b"\xff", b"a\n\xc3\n\xc3\xa9\r\n"]
    for i, content in enumerate(contents):
        path = tmp_path / f"f{i}.csv"
        path.write_bytes(content)
        got = [r[0] for r in duckdb.sql(f"SELECT text FROM ({_lines_sql([str(path)])})").fetchall()]
        expected = [None if "\ufffd" in text else text for text in iter_raw_lines(path)]
        assert got == expected, repr(content)


def test_duckdb_without_catalogue_and_shipments_says_not_applicable(tmp_path):
    from experiments.baselines.duckdb_batch import run_duckdb

    generate(tmp_path / "in", GeneratorOptions(rows=200, seed=5, catalogue=False, shipments=False))
    status = run_duckdb(tmp_path / "in", tmp_path / "w")
    assert status["category_revenue"].startswith("not applicable") and status["fulfilment"].startswith("not applicable")
    assert not export_path(tmp_path / "w", "duckdb", "fulfilment").exists()


def test_spark_batch_baseline_equals_the_oracle(spark, hostile_input):
    from experiments.baselines.spark_batch import run_spark_batch

    input_dir, workdir = hostile_input
    status = run_spark_batch(spark, input_dir, workdir)
    assert set(status.values()) == {"written"}
    _assert_same_as_oracle(workdir, "spark_batch")


# ---------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
def test_lab_bench_end_to_end(tmp_path):
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.cli",
            "bench",
            "--rows",
            "2000",
            "--repeats",
            "1",
            "--builds",
            "kappa",
            "--reports",
            str(reports),
            "--data",
            str(tmp_path / "data"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.is_symlink() and "-bench-" in p.name]
    data = RunData.load(run_dir)
    assert data.drain_systems == ["kappa"] and (run_dir / "report.html").exists()
    wall, cpu, rss = (data.by_repeat("drain", m, "kappa") for m in ("wall_s", "cpu_s", "peak_rss_mb"))
    assert wall[1] > 0 and cpu[1] > 0 and rss[1] > 100  # a JVM at least
    assert {status_of(r) for r in data.select("drain", "equivalence", "kappa")} <= {"identical", "not applicable"}
    assert int(data.select("drain", "wall_s", "kappa")[0]["input_lines"]) > 2000
    assert "every export is identical to the oracle's" in done.stdout
    assert "F1 " in done.stdout and "not measured" in done.stdout
    profile = data.select("profile", "profile_ms", "kappa")
    assert {r["query"] for r in profile} >= {"log", "window_revenue"}
    assert any(r["detail"].startswith("triggerExecution") for r in profile)


def test_the_profile_sums_spark_parts_foreachbatch_steps_and_run_phases(tmp_path):
    progress = tmp_path / "lambda" / "progress"
    progress.mkdir(parents=True)
    (progress / "ingest.jsonl").write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                {"batchId": 0, "durationMs": {"addBatch": 900, "walCommit": 40}},
                {"batchId": 1, "durationMs": {"addBatch": 600, "walCommit": 60}},
                {"batchId": 1, "durationMs": {"addBatch": 600, "walCommit": 60}},
            )
        )
        + "\n"
    )  # a replayed batch once
    (progress / "ingest.steps.jsonl").write_text(
        json.dumps({"batchId": 0, "stepsMs": {"read_parse_count_gate": 700}}) + "\n"
    )
    (progress / "run.phases.jsonl").write_text(
        json.dumps({"batchId": 0, "stepsMs": {"ingest": 1600, "export": 30}}) + "\n"
    )
    rows = {(r["query"], r["part"]): (r["ms"], r["batches"]) for r in systems.PROFILERS["lambda"](tmp_path)}
    assert rows == {
        ("ingest", "addBatch"): (1500, 2),
        ("ingest", "walCommit"): (100, 2),
        ("ingest", "addBatch.read_parse_count_gate"): (700, 1),
        ("run", "ingest"): (1600, 1),
        ("run", "export"): (30, 1),
    }
