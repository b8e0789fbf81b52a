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
from experiments.inputs.generate import GeneratorOptions, generate
from experiments.reference.oracle import run_oracle
from kappa import app
from kappa.app import KappaConfig
from shared.checkpoints import committed_batches
from shared.export import QUERY_NAMES, export_path

pytestmark = pytest.mark.slow
LAB = [sys.executable, "-m", "experiments.cli"]
KILLS = 10
STARTUP_SECONDS = 15  # a `lab run` process until its queries start, on this 2-core machine
# the crash runs and the reference share the shuffle partitions (a checkpoint fixes them)
ENV = {"LAB_SHUFFLE_PARTITIONS": "2"}


@pytest.fixture(scope="module")
def crash_input(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash") / "in"
    generate(root, GeneratorOptions(rows=1200, seed=31, files=3, days=2))
    return root


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


def _check_recovered(report, workdir: Path, reference: Path, build: str) -> None:
    seed = f"(replay with CRASH_TEST_SEED={report.seed})"
    summary = json.dumps(report.to_json()["kills"], indent=1)
    assert report.final_exit_code == 0, f"{seed} the run after the kills failed:\n{report.final_stderr}"
    assert len(report.landed) >= KILLS, f"{seed} only {len(report.landed)} kills landed:\n{summary}"
    assert any(k.anchor == FIRST_BATCH and k.anchor_held for k in report.landed), \
        f"{seed} no kill landed inside the first micro-batch:\n{summary}"
    assert report.landed_at(EXPORT) >= 1, f"{seed} no kill landed during the export:\n{summary}"
    for query in QUERY_NAMES:
        produced = export_path(workdir, build, query).read_bytes()
        assert produced == export_path(reference, build, query).read_bytes(), \
            f"{seed} {query} differs from the uninterrupted run's"
        assert produced == export_path(reference, "oracle", query).read_bytes(), f"{seed} {query} differs from the oracle's"
    accounting = json.loads((workdir / "results" / build / "_accounting.json").read_text())
    assert accounting == json.loads((reference / "results" / "oracle" / "_accounting.json").read_text())


def _crash_kappa(command: list[str], workdir: Path, seconds: float):
    return crash_and_recover(command, seed=_seed(), kills=KILLS, span_seconds=seconds, env=ENV,
                             anchors=_kappa_anchors(workdir),
                             before_each=lambda: shutil.rmtree(workdir / "results" / "kappa", ignore_errors=True))


def test_kappa_on_the_landing_directory_survives_kills_at_random_moments(crash_input, uninterrupted, tmp_path):
    reference, seconds = uninterrupted
    workdir = tmp_path / "w"
    # one file per micro-batch: kills land between micro-batches too, not only inside the first
    command = LAB + ["run", "kappa", "--max-files-per-trigger", "1", "--input", str(crash_input),
                     "--workdir", str(workdir)]
    _check_recovered(_crash_kappa(command, workdir, seconds), workdir, reference, "kappa")


@pytest.mark.kafka
def test_kappa_on_kafka_survives_kills_at_random_moments(crash_input, uninterrupted, tmp_path, kafka_bootstrap,
                                                          new_topic):
    from experiments.inputs.replay import replay_to_kafka

    reference, seconds = uninterrupted
    topic = new_topic("crash")
    replay_to_kafka(crash_input, kafka_bootstrap, topic)
    workdir = tmp_path / "w"
    command = LAB + ["run", "kappa", "--source", "kafka", "--bootstrap", kafka_bootstrap, "--topic", topic,
                     "--input", str(crash_input), "--workdir", str(workdir)]
    _check_recovered(_crash_kappa(command, workdir, seconds), workdir, reference, "kappa")
