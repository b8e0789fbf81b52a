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

from experiments import stats
from experiments.harness import bench, follow, systems
from experiments.harness.run_folder import read_metrics
from experiments.inputs.generate import GeneratorOptions, generate
from experiments.reference.oracle import classify_line, run_oracle
from shared.catalogue import QUERY_NAMES
from shared.export import export_path, results_dir

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# Measuring a command
# ---------------------------------------------------------------------------------------

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}: pass\n"


def test_measure_command_counts_cpu_and_memory(tmp_path):
    m = bench.measure_command([sys.executable, "-c", BURN.format(seconds=0.5)], tmp_path / "log")
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
    m = bench.measure_command([sys.executable, "-c", parent], tmp_path / "log")
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


def test_measure_command_reports_the_exit_code_and_output(tmp_path):
    m = bench.measure_command([sys.executable, "-c", "print('hello'); raise SystemExit(3)"], tmp_path / "log")
    assert m.exit_code == 3
    assert "hello" in (tmp_path / "log").read_text()


def test_a_command_past_its_timeout_is_killed(tmp_path):
    with pytest.raises(TimeoutError):
        bench.measure_command([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log", timeout=1)


# ---------------------------------------------------------------------------------------
# The figures, from a hand-made metrics CSV
# ---------------------------------------------------------------------------------------


def _write_metrics(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=bench.METRICS_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    "run_id": "r1",
                    "timestamp": "2024-01-01T00:00:00Z",
                    "input_lines": "1000",
                    "master": "local[2]",
                    "exit_code": "0",
                    "identical": "1",
                    "cpu_s": "1",
                    "peak_rss_mb": "100",
                    **row,
                }
            )


WALLS = {
    "spark_batch": (10, 12, 11),
    "kappa": (20, 20, 22),
    "lambda": (25, 30, 22),
    "dstream": (40, 36, 50),
    "duckdb": (2, 3, 4),
}


@pytest.fixture
def metrics_csv(tmp_path):
    rows = [
        {"build": build, "repeat": str(i + 1), "wall_s": str(wall)}
        for build, walls in WALLS.items()
        for i, wall in enumerate(walls)
    ]
    rows += [
        {
            "build": bench.LIVE,
            "repeat": str(i + 1),
            "wall_s": "70",
            "latency_p50_s": str(p50),
            "latency_p95_s": "2",
            "latency_max_s": "3",
            "live_rate_lps": "1000",
            "live_units": "50",
            "warmup_units": "10",
            "uncovered_units": "0",
        }
        for i, p50 in enumerate((0.8, 1.2, 0.9))
    ]
    rows.append({"build": "kappa", "repeat": "4", "wall_s": "1", "exit_code": "1", "identical": "0"})  # failed
    rows.append({"run_id": "other", "build": "spark_batch", "repeat": "1", "wall_s": "1000"})  # another run
    path = tmp_path / "metrics.csv"
    _write_metrics(path, rows)
    return path


def _target(name: str) -> bench.Target:
    return next(t for t in bench.TARGETS if t.name == name)


def test_ratios_are_per_repeat_then_median_and_spread(metrics_csv):
    rows = read_metrics(metrics_csv, "r1")
    assert bench.ratio_values(rows, _target("F1")) == [10 / 20, 12 / 20, 11 / 22]  # failed repeat 4 left out
    assert bench.ratio_values(rows, _target("F2")) == [25 / 10, 30 / 12, 22 / 11]
    assert bench.ratio_values(rows, _target("F4")) == [0.8, 1.2, 0.9]
    spread = stats.Spread.of(bench.ratio_values(rows, _target("F5")))
    assert (spread.median, spread.low, spread.high, spread.n) == (4.0, 2.75, 5.0, 3)


def test_target_lines_say_met_or_not(metrics_csv):
    rows = read_metrics(metrics_csv, "r1")
    assert bench.target_line(rows, _target("F1")).endswith(": met")  # median 0.5 >= 0.5
    assert bench.target_line(rows, _target("F2")).endswith(": NOT MET")  # median 2.5 > 2
    assert bench.target_line(rows, _target("F3")).endswith(": met")  # median 4.0 <= 4
    assert "0.90 s (0.80-1.20, n=3)" in bench.target_line(rows, _target("F4"))
    assert bench.target_line(rows, _target("F5")).endswith(": NOT MET")  # 4 > 3
    assert "not measured" in bench.target_line([r for r in rows if r["build"] != "duckdb"], _target("F5"))


def test_the_report_reads_only_its_run(metrics_csv):
    text = bench.report(metrics_csv, "r1")
    assert "1000.0" not in text and "spark_batch" in text and "kappa_live" in text
    assert "NOT IDENTICAL to the oracle: kappa repeat 4" in text
    assert "11.0 (10.0-12.0, n=3)" in text  # spark_batch wall time: median (min-max)


def test_a_live_run_stopped_behind_the_input_is_not_compared_rather_than_different(tmp_path):
    path = tmp_path / "metrics.csv"
    _write_metrics(
        path,
        [
            {"build": "spark_batch", "repeat": "1", "wall_s": "10"},
            {
                "build": bench.LIVE,
                "repeat": "1",
                "wall_s": "400",
                "identical": "",
                "detail": "not within 300 s; stopped before the end of the replay, export not compared",
                "latency_p50_s": "215",
                "latency_p95_s": "290",
                "latency_max_s": "300",
                "live_rate_lps": "1000",
                "live_units": "50",
                "warmup_units": "10",
                "uncovered_units": "12",
            },
        ],
    )
    text = bench.report(path, "r1")
    assert "NOT IDENTICAL" not in text and "every export compared is identical" in text
    assert "export not compared: kappa_live repeat 1: not within 300 s" in text
    assert "0/0 (1 not compared)" in text
    assert "12 of 50 measured units were never covered" in bench.target_line(read_metrics(path, "r1"), _target("F4"))


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
    latencies = bench.unit_latencies(replay, commit_log_path(tmp_path, "kappa"), ("city_revenue", "window_revenue"))
    assert latencies == [pytest.approx(1.8), pytest.approx(0.8), None]
    assert not follow.covered_by_all(commit_log_path(tmp_path, "kappa"), ("city_revenue", "window_revenue"), 29)
    assert follow.covered_by_all(commit_log_path(tmp_path, "kappa"), ("city_revenue",), 29)


def test_a_bench_run_s_environment_is_the_run_folder_s_with_its_options(tmp_path):
    from experiments.harness.run_folder import write_environment

    env = bench.environment(bench.BenchOptions(rows=10), tmp_path / "in", 10, "local[2]")
    write_environment(tmp_path / "run.json", env)  # paths among the settings are written as text
    written = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert written["raw_lines"] == 10 and written["spark_master"] == "local[2]" and written["options"]["rows"] == "10"
    assert {"machine", "versions", "git_commit", "settings"} <= set(written)


def test_bench_metrics_are_written_and_read_as_a_run_folders(tmp_path):
    """One writer and one reader for every metrics CSV: appended under one header, booleans
    1/0, a file with other columns refused."""
    from experiments.harness.run_folder import append_rows, read_metrics

    path = tmp_path / "m.csv"
    append_rows(path, bench.METRICS_COLUMNS, [{"run_id": "a", "build": "kappa", "identical": True, "wall_s": 1 / 3}])
    append_rows(path, bench.METRICS_COLUMNS, [{"run_id": "b", "build": "duckdb", "identical": False}])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(bench.METRICS_COLUMNS) and len(lines) == 3
    assert [(r["identical"], r["wall_s"]) for r in read_metrics(path)] == [("1", "0.333333"), ("0", "")]
    assert [r["build"] for r in read_metrics(path, "b")] == ["duckdb"]
    other = tmp_path / "other.csv"
    other.write_text("x,y\n")
    with pytest.raises(ValueError):
        append_rows(other, bench.METRICS_COLUMNS, [{"run_id": "a"}])


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
    metrics = tmp_path / "reports" / "metrics.csv"
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
            "--no-live",
            "--builds",
            "kappa",
            "--metrics",
            str(metrics),
            "--data",
            str(tmp_path / "data"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_metrics(metrics)
    assert [(r["build"], r["repeat"], r["identical"], r["exit_code"]) for r in rows] == [("kappa", "1", "1", "0")]
    row = rows[0]
    assert int(row["input_lines"]) > 2000 and float(row["wall_s"]) > 0 and float(row["cpu_s"]) > 0
    assert float(row["peak_rss_mb"]) > 100  # a JVM at least
    assert "F1 " in done.stdout and "not measured" in done.stdout
    profile = read_metrics(metrics.with_name("profile.csv"))
    assert {p["part"] for p in profile} >= {"triggerExecution", "addBatch"}
    assert {p["query"] for p in profile} >= {"log", "window_revenue"}


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
