"""The Kappa build: exactly once across SIGKILLs, reprocessing by replay with an atomic
cut-over, clear failures and the Kafka log (the cluster: tests/test_cluster.py)."""

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from experiments.inputs.generate import GeneratorOptions, generate
from experiments.reference.oracle import run_oracle
from kappa import app
from kappa.app import KappaConfig
from kappa.versions import drop_version, serving_version
from shared.catalogue import QUERY_NAMES
from shared.checkpoints import CheckpointMismatch
from shared.export import export_path
from tests.live import JAVA_STACK_FRAME, LAB, assert_latency_readable, commits_cover, empty_landing, follow_until

pytestmark = pytest.mark.slow
RATE = 3000  # lines per second the follow test replays at


@pytest.fixture(scope="module")
def log_input(generated_input):
    return generated_input(rows=3000, seed=21, files=6, days=3, windows_1252_files=1, binary_files=1)


def _same_as_oracle(input_dir, workdir, queries=QUERY_NAMES):
    oracle_dir = Path(workdir).parent / (Path(workdir).name + "-oracle")
    run_oracle(input_dir, oracle_dir)
    different = [
        q
        for q in queries
        if export_path(workdir, "kappa", q).read_bytes() != export_path(oracle_dir, "oracle", q).read_bytes()
    ]
    assert different == [], f"kappa differs from the oracle on {different}"


def test_a_checkpoint_left_by_a_crash_before_its_first_batch_restarts(spark, log_input, tmp_path, monkeypatch):
    """The state a SIGKILL in the first micro-batch leaves (a temporary offsets file and
    state metadata, no planned batch): Spark 4.2 alone refuses to start over it. So does
    Delta over a `clean_lines` folder whose creation was killed before commit 0.

    The same run checks the commit log's seqs: a stateful query may read a new
    `clean_lines` version the moment it commits, so the seq that version holds must be in
    the log's version map before then (else its commit-log row claims the version before,
    and in follow mode nothing corrects it until more input arrives)."""
    from shared import checkpoints
    from shared.commit_log import NO_SEQ
    from shared.delta_log import next_version
    from shared.delta_versions import VersionSeqLog

    config = KappaConfig(str(log_input), str(tmp_path / "w"), max_files_per_trigger=2)  # three log batches
    for name in ("log", "window_revenue", "fulfilment_pairs"):
        leftovers = Path(config.checkpoint(name))
        (leftovers / "offsets").mkdir(parents=True)
        (leftovers / "offsets" / ".0.1b2c3d4e-0000-tmp").write_text("v1\n")
        (leftovers / "state" / "0" / "_metadata").mkdir(parents=True)
        (leftovers / "state" / "0" / "_metadata" / "metadata").write_text("{}")
    unborn_log = Path(config.table(app.CLEAN_LINES)) / "_delta_log"
    unborn_log.mkdir(parents=True)
    (unborn_log / ".00000000000000000000.json.0a1b2c3d-tmp").write_text("{}")
    seq_map = VersionSeqLog(config.root / "clean_lines_seq.csv")
    real_append, seen = checkpoints.append_once, []

    def checked_append(frame, table, app_id, batch_id):
        if Path(table).name == app.CLEAN_LINES:
            version = next_version(table)  # the version this append creates
            seen.append((version, seq_map.max_seq_through(version), seq_map.max_seq_through(version - 1)))
        return real_append(frame, table, app_id, batch_id)

    monkeypatch.setattr(checkpoints, "append_once", checked_append)
    app.run(spark, config)
    _same_as_oracle(log_input, tmp_path / "w")
    assert len(seen) >= 2 and all(new > before and new != NO_SEQ for _, new, before in seen), seen


def test_reprocessing_by_replay_cuts_over_atomically(spark, log_input, tmp_path, monkeypatch):
    source, workdir = tmp_path / "in", tmp_path / "w"
    shutil.copytree(log_input, source)
    last = sorted(source.glob("sales_*.csv"))[-1]
    held_back = tmp_path / last.name
    shutil.move(str(last), held_back)
    live = KappaConfig(str(source), str(workdir), version="v1", queries=("city_revenue_v1",))
    app.run(spark, live)
    assert serving_version(workdir) == "v1"
    v1_table = live.table(app.PARTIALS_TABLE)  # where v1's city_revenue_v1 is read from
    real_drain, drained = app.drain, []

    def a_file_lands_during_the_first_pass(spark_, config):
        consumed = real_drain(spark_, config)
        if not drained:
            shutil.move(str(held_back), last)  # the live log grew while v2 replayed it
        drained.append(consumed)
        return consumed

    monkeypatch.setattr(app, "drain", a_file_lands_during_the_first_pass)
    outcome = app.replay(spark, replace(live, version="v2", queries=("city_revenue", "city_revenue_v1")))
    # a second pass for the file that landed during the first; none after it (nothing landed)
    assert outcome["passes"] == 2 and len(drained) == 2 and drained[1] > 0, (outcome, drained)
    assert outcome["previous"] == "v1" and outcome["input_rows"] == sum(drained)
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
    grouped_sum = Q.grouped_sum
    monkeypatch.setattr(
        Q, "grouped_sum", lambda lines, spec: grouped_sum(lines, spec).limit(1)
    )  # new logic, old version
    with pytest.raises(CheckpointMismatch, match="lab kappa replay --version"):
        app.run(spark, config)


def test_missing_input_and_unreachable_broker_are_clear_errors(tmp_path):
    missing = subprocess.run(
        LAB + ["run", "kappa", "--input", str(tmp_path / "nope"), "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "in").mkdir()
    broker = subprocess.run(
        LAB
        + [
            "run",
            "kappa",
            "--source",
            "kafka",
            "--bootstrap",
            "127.0.0.1:1",
            "--input",
            str(tmp_path / "in"),
            "--workdir",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert broker.returncode == 2 and "cannot reach the Kafka broker at 127.0.0.1:1" in broker.stderr
    assert "make kafka-up" in broker.stderr
    assert not (tmp_path / "w" / "results").exists()  # nothing half-written


@pytest.mark.kafka
def test_kafka_log_gives_the_same_exports_as_the_landing_directory(
    spark, log_input, tmp_path, kafka_bootstrap, new_topic
):
    from experiments.inputs.kafka_replay import replay_to_kafka

    bootstrap = kafka_bootstrap
    topic = new_topic("sales-test")
    replay_to_kafka(log_input, bootstrap, topic)
    config = KappaConfig(
        str(log_input),
        str(tmp_path / "w"),
        source="kafka",
        kafka_bootstrap=bootstrap,
        kafka_topic=topic,
        kafka_max_offsets_per_trigger=1000,
    )
    app.run(spark, config)
    _same_as_oracle(log_input, tmp_path / "w")


@pytest.mark.e2e  # 80 s: `make test-e2e` (CI runs it after `make test`, which keeps its 15 minutes)
def test_follow_consumes_arriving_files_until_sigterm(log_input, tmp_path):
    from experiments.inputs.replay import replay_to_landing
    from experiments.inputs.stream import count_raw_lines

    landing = empty_landing(log_input, tmp_path / "landing")
    workdir = tmp_path / "w"
    last_seq = sum(count_raw_lines(p) for p in log_input.glob("sales_*.csv")) - 1
    out, _ = follow_until(
        "kappa",
        landing,
        workdir,
        extra=["--interval", "1 second"],
        # running, idle on an empty log
        started=lambda: (workdir / "kappa" / "v1" / "checkpoints" / "log" / "metadata").exists(),
        feed=lambda: replay_to_landing(log_input, landing, rate_lines_per_second=RATE, log_dir=tmp_path / "replay"),
        caught_up=commits_cover(workdir, "kappa", QUERY_NAMES, last_seq),
    )
    assert "city_revenue       written" in out
    _same_as_oracle(landing, workdir)
    assert_latency_readable(tmp_path / "replay", workdir, "kappa", QUERY_NAMES)


def test_late_lines_are_dropped_exactly_as_the_watermark_model_says(spark, tmp_path):
    from experiments.harness.verify import EXPLAINED, verify

    late = tmp_path / "late"
    generate(late, GeneratorOptions(rows=3000, seed=5, files=6, days=2, late_fraction=0.05))
    # one file a micro-batch: the watermark moves between files, so late lines are dropped
    outcome = verify(spark, late, tmp_path / "w", builds=("kappa",), options={"kappa": {"max_files_per_trigger": 1}})
    statuses = {c.query: c for c in outcome.comparisons}
    window = statuses["window_revenue"]
    assert window.status == EXPLAINED, window
    assert "(line, window) pairs" in window.detail
    dropped = (tmp_path / "w" / "results" / "watermark_model" / "dropped_pairs.csv").read_text().splitlines()
    assert len(dropped) > 1 and dropped[0] == "file,order_ts,window_start,window_end,line"
    assert all(c.status == "identical" for q, c in statuses.items() if q != "window_revenue")
    assert outcome.ok


def test_a_failing_query_stops_the_others_quietly_with_its_own_error(tmp_path):
    """A shipment that cannot be parsed fails the join; the other queries are stopped
    between micro-batches (no StackOverflowError), and the advice is not the replay one."""
    broken = tmp_path / "in"
    generate(broken, GeneratorOptions(rows=600, seed=3, files=2, days=1))
    with open(broken / "shipments" / "shipments_0000.csv", "a", encoding="utf-8") as shipments:
        shipments.write("141251,USB-C Charging Cable,not a time,UPS\n")
    result = subprocess.run(
        LAB + ["run", "kappa", "--input", str(broken), "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "streaming query kappa_v1_fulfilment_pairs failed" in result.stderr
    assert "StackOverflowError" not in result.stderr and "lab kappa replay" not in result.stderr
    # one line, naming the file that has Spark's own report (not a console of stack frames)
    assert "Spark's report: " in result.stderr and not JAVA_STACK_FRAME.search(result.stderr), result.stderr[-3000:]


def test_a_follow_stopped_before_any_line_says_there_is_nothing_to_export(spark, log_input, tmp_path):
    """Not "has no results: run it first" (a drain's advice): the service did run."""
    landing = empty_landing(log_input, tmp_path / "landing")
    with pytest.raises(RuntimeError, match="stopped before any line was read: nothing to export"):
        app.follow(
            spark,
            KappaConfig(str(landing), str(tmp_path / "w"), processing_interval="1 second"),
            should_stop=lambda: True,
        )
