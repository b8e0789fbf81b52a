"""The Kappa build: exactly once across SIGKILLs, reprocessing by replay with an atomic
cut-over, clear failures, the Kafka log, and a Spark standalone cluster."""
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from experiments.generate import GeneratorOptions, generate
from experiments.oracle import run_oracle
from kappa import app
from kappa.app import CheckpointMismatch, KappaConfig
from kappa.versions import drop_version, serving_version
from shared.export import QUERY_NAMES, export_path

pytestmark = pytest.mark.slow
LAB = [sys.executable, "-m", "experiments.cli", "--quiet"]


@pytest.fixture(scope="module")
def log_input(tmp_path_factory):
    root = tmp_path_factory.mktemp("kappa") / "in"
    generate(root, GeneratorOptions(rows=3000, seed=21, files=6, days=3))
    return root


def _same_as_oracle(input_dir, workdir, queries=QUERY_NAMES):
    oracle_dir = Path(workdir).parent / (Path(workdir).name + "-oracle")
    run_oracle(input_dir, oracle_dir)
    different = [q for q in queries
                 if export_path(workdir, "kappa", q).read_bytes() != export_path(oracle_dir, "oracle", q).read_bytes()]
    assert different == [], f"kappa differs from the oracle on {different}"


def _commits(workdir, query="city_revenue", version="v1") -> int:
    folder = Path(workdir) / "kappa" / version / "checkpoints" / query / "commits"
    return len([p for p in folder.iterdir() if p.name.isdigit()]) if folder.exists() else 0


def test_sigkill_twice_then_resume_gives_the_uninterrupted_results(log_input, tmp_path):
    workdir = tmp_path / "w"
    command = LAB + ["run", "kappa", "--input", str(log_input), "--workdir", str(workdir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for wanted_commits in (2, 4):  # kill in the middle of processing, twice
        process = subprocess.Popen(command, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while _commits(workdir) < wanted_commits and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, "the run finished before it could be killed: make the input bigger"
        os.killpg(process.pid, signal.SIGKILL)  # the Python driver and its JVM, at once
        process.wait()
        kills += 1
        assert _commits(workdir) < 6 + 1  # six files, one per batch: still mid-way
    assert kills == 2
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    _same_as_oracle(log_input, workdir)


def test_reprocessing_by_replay_cuts_over_atomically(spark, log_input, tmp_path):
    workdir = tmp_path / "w"
    live = KappaConfig(str(log_input), str(workdir), version="v1", queries=("city_revenue_v1",))
    app.run(spark, live)
    assert serving_version(workdir) == "v1"
    v1_table = live.table("city_revenue_v1")
    outcome = app.replay(spark, replace(live, version="v2", queries=("city_revenue", "city_revenue_v1")))
    assert outcome["previous"] == "v1" and outcome["passes"] >= 2 and outcome["input_rows"] > 0
    assert serving_version(workdir) == "v2"
    status = app.export_results(spark, replace(live, version="v2", queries=("city_revenue", "city_revenue_v1")))
    assert status == {"city_revenue": "written", "city_revenue_v1": "written"}
    _same_as_oracle(log_input, workdir, queries=("city_revenue", "city_revenue_v1"))
    assert spark.read.format("delta").load(v1_table).count() > 0  # the old version stays readable
    with pytest.raises(ValueError, match="serving version"):
        drop_version(workdir, "v2")
    drop_version(workdir, "v1")
    assert not Path(v1_table).exists()


def test_changed_logic_on_an_old_checkpoint_is_a_clear_error(spark, log_input, tmp_path, monkeypatch):
    from shared import queries as Q

    source = tmp_path / "in"
    shutil.copytree(log_input, source)
    first_files = sorted(source.glob("sales_*.csv"))
    held_back = tmp_path / "held"
    held_back.mkdir()
    shutil.move(str(first_files[-1]), held_back / first_files[-1].name)
    config = KappaConfig(str(source), str(tmp_path / "w"), queries=("city_revenue",))
    app.run(spark, config)
    shutil.move(str(held_back / first_files[-1].name), source / first_files[-1].name)  # more log arrives
    monkeypatch.setattr(Q, "city_revenue", Q.city_revenue_v1)  # a logic change without a new version
    with pytest.raises(CheckpointMismatch, match="lab kappa replay --version"):
        app.run(spark, config)


def test_missing_input_and_unreachable_broker_are_clear_errors(tmp_path):
    missing = subprocess.run(LAB + ["run", "kappa", "--input", str(tmp_path / "nope"), "--workdir", str(tmp_path / "w")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "in").mkdir()
    broker = subprocess.run(LAB + ["run", "kappa", "--source", "kafka", "--bootstrap", "127.0.0.1:1",
                                   "--input", str(tmp_path / "in"), "--workdir", str(tmp_path / "w")],
                            capture_output=True, text=True, timeout=120)
    assert broker.returncode == 2 and "cannot reach the Kafka broker at 127.0.0.1:1" in broker.stderr
    assert "make kafka-up" in broker.stderr
    assert not (tmp_path / "w" / "results").exists()  # nothing half-written


@pytest.mark.kafka
def test_kafka_log_gives_the_same_exports_as_the_landing_directory(spark, log_input, tmp_path, kafka_bootstrap,
                                                                   new_topic):
    from experiments.replay import replay_to_kafka

    bootstrap = kafka_bootstrap
    topic = new_topic("sales-test")
    replay_to_kafka(log_input, bootstrap, topic)
    config = KappaConfig(str(log_input), str(tmp_path / "w"), source="kafka", kafka_bootstrap=bootstrap,
                         kafka_topic=topic, kafka_max_offsets_per_trigger=1000)
    app.run(spark, config)
    _same_as_oracle(log_input, tmp_path / "w")


@pytest.mark.cluster
def test_kappa_on_the_standalone_cluster(log_input, tmp_path):
    master = os.environ.get("LAB_TEST_CLUSTER_MASTER", "spark://127.0.0.1:7077")
    result = subprocess.run(LAB + ["run", "kappa", "--master", master, "--input", str(log_input),
                                   "--workdir", str(tmp_path / "w")], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    _same_as_oracle(log_input, tmp_path / "w")


def test_follow_consumes_arriving_files_until_sigterm(log_input, tmp_path):
    from experiments.replay import count_raw_lines, replay_to_landing
    from kappa.progress_log import input_rows

    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copytree(log_input / "catalogue", landing / "catalogue")
    shutil.copytree(log_input / "shipments", landing / "shipments")
    shutil.copy(log_input / "_manifest.json", landing / "_manifest.json")
    workdir = tmp_path / "w"
    process = subprocess.Popen(LAB + ["run", "kappa", "--follow", "--interval", "1 second", "--input", str(landing),
                                      "--workdir", str(workdir)], start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        started = workdir / "kappa" / "v1" / "checkpoints" / "line_accounting" / "metadata"
        while not started.exists() and time.monotonic() < deadline:  # running, idle on an empty log
            assert process.poll() is None, process.stderr.read()[-3000:]
            time.sleep(0.5)
        time.sleep(5)
        replay_to_landing(log_input, landing, rate_lines_per_second=3000)
        raw_lines = sum(count_raw_lines(p) for p in log_input.glob("sales_*.csv"))
        progress = workdir / "kappa" / "v1" / "progress"
        readers_of_the_log = ("line_accounting", "quarantine", "quality_gate", "city_revenue", "daily_revenue",
                              "product_sales", "hourly_sales", "window_revenue", "category_revenue",
                              "city_revenue_v1", "fulfilment_pairs")
        while time.monotonic() < deadline:
            if all(input_rows(progress / f"{name}.jsonl") >= raw_lines for name in readers_of_the_log):
                break
            assert process.poll() is None
            time.sleep(0.5)
        time.sleep(15)  # the fulfilment aggregate reads the join's table: let it take its last batch
    finally:
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "city_revenue       written" in out
    _same_as_oracle(landing, workdir)


def test_late_lines_are_dropped_exactly_as_the_watermark_model_says(spark, tmp_path):
    from experiments.verify import EXPLAINED, verify

    late = tmp_path / "late"
    generate(late, GeneratorOptions(rows=3000, seed=5, files=6, days=2, late_fraction=0.05))
    outcome = verify(spark, late, tmp_path / "w", builds=("kappa",))
    statuses = {c.query: c for c in outcome.comparisons}
    window = statuses["window_revenue"]
    assert window.status == EXPLAINED, window
    assert "(line, window) pairs" in window.detail
    dropped = (tmp_path / "w" / "results" / "watermark_model" / "dropped_pairs.csv").read_text().splitlines()
    assert len(dropped) > 1 and dropped[0] == "file,order_ts,window_start,window_end,line"
    assert all(c.status == "identical" for q, c in statuses.items() if q != "window_revenue")
    assert outcome.ok
