"""kill -9 at random moments, restart, and the results are those of an uninterrupted run.

Each test kills the whole process group of `lab run <build>` at ten or more moments drawn
from a seeded plan (two inside the first micro-batch, one during the results export, the
rest anywhere), restarts the same command after each kill, and compares the final exports
byte for byte with an uninterrupted run's and with the oracle's. The seed is random unless
CRASH_TEST_SEED is set; a failure names it, so the same kills can be replayed.
"""

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import pytest

from experiments.harness.crash import EXPORT, FIRST_BATCH, crash_and_recover
from experiments.reference.oracle import run_oracle
from kappa import app
from kappa.app import KappaConfig
from shared.catalogue import QUERY_NAMES
from shared.checkpoints import committed_batches
from shared.export import export_path

pytestmark = [pytest.mark.slow, pytest.mark.crash]
LAB = [sys.executable, "-m", "experiments.cli"]
KILLS = 10
STARTUP_SECONDS = 15  # a `lab run` process until its queries start, on this 2-core machine
# the crash runs and the reference share the shuffle partitions (a checkpoint fixes them)
# compaction and pruning every 3 batches: the kills land around them too (shared/table_upkeep.py)
ENV = {"LAB_SHUFFLE_PARTITIONS": "2", "LAB_COMPACT_EVERY_BATCHES": "3"}


@pytest.fixture(scope="module")
def crash_input(generated_input):
    return generated_input(rows=1200, seed=31, files=3, days=2)


@pytest.fixture(scope="module")
def uninterrupted(spark, crash_input, tmp_path_factory):
    """The exports of an uninterrupted kappa run (in this session: no JVM to start) and the
    span kills are drawn over: that run's time plus a start-up's."""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "w"
    started = time.monotonic()
    app.run(spark, KappaConfig(str(crash_input), str(workdir), max_files_per_trigger=1))
    run_oracle(crash_input, workdir)
    return workdir, time.monotonic() - started + STARTUP_SECONDS


def _seed() -> int:
    return int(os.environ.get("CRASH_TEST_SEED") or random.randrange(1_000_000))


def _kappa_anchors(workdir: Path) -> dict:
    log_checkpoint = workdir / "kappa" / "v1" / "checkpoints" / "log"
    return {
        # this run's queries are starting or running, and the log's first batch has not committed
        FIRST_BATCH: lambda output: "kappa: processing" in output and not committed_batches(log_checkpoint),
        EXPORT: lambda output: (workdir / "results" / "kappa").exists(),
    }


def _check_recovered(report, workdir: Path, reference: Path, build: str, queries=QUERY_NAMES) -> None:
    """The run after the kills ended well, the kills landed where the plan says, and every
    export equals the uninterrupted run's and the oracle's (`reference` holds both)."""
    seed = f"(replay with CRASH_TEST_SEED={report.seed})"
    summary = json.dumps(report.to_json()["kills"], indent=1)
    assert report.final_exit_code == 0, f"{seed} the run after the kills failed:\n{report.final_stderr}"
    assert len(report.landed) >= KILLS, f"{seed} only {len(report.landed)} kills landed:\n{summary}"
    assert any(k.anchor == FIRST_BATCH and k.anchor_held for k in report.landed), (
        f"{seed} no kill landed inside the first micro-batch:\n{summary}"
    )
    assert report.landed_at(EXPORT) >= 1, f"{seed} no kill landed during the export:\n{summary}"
    for query in queries:
        produced = export_path(workdir, build, query).read_bytes()
        assert produced == export_path(reference, build, query).read_bytes(), (
            f"{seed} {query} differs from the uninterrupted run's"
        )
        assert produced == export_path(reference, "oracle", query).read_bytes(), (
            f"{seed} {query} differs from the oracle's"
        )
    accounting = json.loads((workdir / "results" / build / "_accounting.json").read_text())
    assert accounting == json.loads((reference / "results" / "oracle" / "_accounting.json").read_text())


def _crash_kappa(command: list[str], workdir: Path, seconds: float):
    return crash_and_recover(
        command,
        seed=_seed(),
        kills=KILLS,
        span_seconds=seconds,
        env=ENV,
        anchors=_kappa_anchors(workdir),
        before_each=lambda: shutil.rmtree(workdir / "results" / "kappa", ignore_errors=True),
    )


def test_kappa_on_the_landing_directory_survives_kills_at_random_moments(crash_input, uninterrupted, tmp_path):
    reference, seconds = uninterrupted
    workdir = tmp_path / "w"
    # one file per micro-batch: kills land between micro-batches too, not only inside the first
    command = LAB + [
        "run",
        "kappa",
        "--max-files-per-trigger",
        "1",
        "--input",
        str(crash_input),
        "--workdir",
        str(workdir),
    ]
    _check_recovered(_crash_kappa(command, workdir, seconds), workdir, reference, "kappa")


@pytest.mark.kafka
def test_kappa_on_kafka_survives_kills_at_random_moments(
    crash_input, uninterrupted, tmp_path, kafka_bootstrap, new_topic
):
    from experiments.inputs.kafka_replay import replay_to_kafka

    reference, seconds = uninterrupted
    topic = new_topic("crash")
    replay_to_kafka(crash_input, kafka_bootstrap, topic)
    workdir = tmp_path / "w"
    command = LAB + [
        "run",
        "kappa",
        "--source",
        "kafka",
        "--bootstrap",
        kafka_bootstrap,
        "--topic",
        topic,
        "--input",
        str(crash_input),
        "--workdir",
        str(workdir),
    ]
    _check_recovered(_crash_kappa(command, workdir, seconds), workdir, reference, "kappa")


@pytest.fixture(scope="module")
def uninterrupted_dstream(spark, crash_input, tmp_path_factory):
    """The exports of an uninterrupted dstream drain, one file a batch, and the span kills
    are drawn over."""
    from legacy_dstream.app import run
    from legacy_dstream.config import DStreamConfig

    workdir = tmp_path_factory.mktemp("uninterrupted-dstream") / "w"
    started = time.monotonic()
    run(spark, DStreamConfig(str(crash_input), str(workdir), files_per_batch=1), fresh=True)
    run_oracle(crash_input, workdir)
    return workdir, time.monotonic() - started + STARTUP_SECONDS


def test_dstream_resumes_its_checkpoint_after_kills_at_random_moments(crash_input, uninterrupted_dstream, tmp_path):
    """getOrCreate resumes the checkpoint; a batch run again overwrites its own output, so
    no line is counted twice or lost (the legacy build's outputs are made idempotent)."""
    from legacy_dstream.config import UNSUPPORTED

    reference, seconds = uninterrupted_dstream
    workdir = tmp_path / "w"
    landing, output = workdir / "dstream" / "landing", workdir / "dstream" / "output"
    anchors = {
        # this run's context is running, files are landed, and no batch has written its output yet
        FIRST_BATCH: lambda text: (
            "dstream: processing" in text
            and landing.is_dir()
            and any(landing.iterdir())
            and not any(output.glob("batch-*.pickle"))
        ),
        EXPORT: lambda text: (workdir / "results" / "dstream").exists(),
    }
    command = LAB + [
        "run",
        "dstream",
        "--max-files-per-trigger",
        "1",
        "--input",
        str(crash_input),
        "--workdir",
        str(workdir),
    ]
    report = crash_and_recover(
        command,
        seed=_seed(),
        kills=KILLS,
        span_seconds=seconds,
        env=ENV,
        anchors=anchors,
        before_each=lambda: shutil.rmtree(workdir / "results" / "dstream", ignore_errors=True),
    )
    _check_recovered(report, workdir, reference, "dstream", [q for q in QUERY_NAMES if q not in UNSUPPORTED])


@pytest.fixture(scope="module")
def uninterrupted_lambda(spark, crash_input, tmp_path_factory):
    """The exports of an uninterrupted lambda run, one file an ingest batch, and the span."""
    from lambda_arch.app import LambdaConfig, run

    workdir = tmp_path_factory.mktemp("uninterrupted-lambda") / "w"
    started = time.monotonic()
    run(spark, LambdaConfig(str(crash_input), str(workdir), max_files_per_trigger=1), fresh=True)
    run_oracle(crash_input, workdir)
    return workdir, time.monotonic() - started + STARTUP_SECONDS


def _lambda_anchors(workdir: Path) -> dict:
    ingest = workdir / "lambda" / "checkpoints" / "ingest"
    return {
        # this run's queries are starting or running, and no ingest batch has committed yet
        FIRST_BATCH: lambda text: "lambda: processing" in text and not committed_batches(ingest),
        EXPORT: lambda text: (workdir / "results" / "lambda").exists(),
    }


def test_lambda_survives_kills_at_random_moments(crash_input, uninterrupted_lambda, tmp_path):
    """Kills land during ingest, the batch layer, the publication of the cutoff, the speed
    layer and the export; the same command again ends with the uninterrupted exports."""
    reference, seconds = uninterrupted_lambda
    workdir = tmp_path / "w"
    command = LAB + [
        "run",
        "lambda",
        "--max-files-per-trigger",
        "1",
        "--input",
        str(crash_input),
        "--workdir",
        str(workdir),
    ]
    report = crash_and_recover(
        command,
        seed=_seed(),
        kills=KILLS,
        span_seconds=seconds,
        env=ENV,
        anchors=_lambda_anchors(workdir),
        before_each=lambda: shutil.rmtree(workdir / "results" / "lambda", ignore_errors=True),
    )
    _check_recovered(report, workdir, reference, "lambda")


def test_lambda_follow_survives_kills_at_random_moments(crash_input, uninterrupted_lambda, tmp_path):
    """`lab run lambda --follow` with a batch run every new master version (handoff after
    handoff) on files that keep landing; killed ten times at random moments and started
    again each time; stopped with SIGTERM once serving includes every line."""
    import threading

    from experiments.inputs.replay import replay_to_landing
    from shared.commit_log import commit_log_path, read_commits
    from shared.raw_lines import count_raw_lines
    from tests.live import empty_landing

    reference, seconds = uninterrupted_lambda
    landing = empty_landing(crash_input, tmp_path / "landing")
    workdir = tmp_path / "w"
    last_seq = sum(count_raw_lines(p) for p in crash_input.glob("sales_*.csv")) - 1
    # the files keep arriving over the first kills (a file every ~10 s)
    lines_per_file = (last_seq + 1) / len(list(crash_input.glob("sales_*.csv")))
    feeder = threading.Thread(
        target=replay_to_landing,
        args=(crash_input, landing),
        kwargs={"rate_lines_per_second": lines_per_file / 10},
        daemon=True,
    )

    def served_everything(text: str) -> bool:
        if "lambda: processing" not in text:  # this run's signal handlers are in place
            return False
        newest = {c.query: c.max_seq for c in read_commits(commit_log_path(workdir, "lambda"))}
        return len(newest) == len(QUERY_NAMES) and min(newest.values()) >= last_seq

    command = LAB + [
        "run",
        "lambda",
        "--follow",
        "--interval",
        "1 second",
        "--batch-every",
        "1 version",
        "--input",
        str(landing),
        "--workdir",
        str(workdir),
    ]
    feeder.start()
    report = crash_and_recover(
        command,
        seed=_seed(),
        kills=KILLS,
        span_seconds=seconds,
        env=ENV,
        anchors=_lambda_anchors(workdir),
        done=served_everything,
        before_each=lambda: shutil.rmtree(workdir / "results" / "lambda", ignore_errors=True),
    )
    feeder.join()
    _check_recovered(report, workdir, reference, "lambda")
