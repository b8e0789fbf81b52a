"""Faults a long-running stream meets besides a kill (tests/test_crash_recovery.py has those),
done by the lab's fault injector (experiments/harness/faults.py): the Kafka broker going
away in the middle of a replay and coming back (every build that reads Kafka, kappa and
lambda: the legacy DStream build has no Kafka source, rides it out by itself, with no line
lost or counted twice), and a workdir whose file system fills up (every build stops with
a clear message; a restart once there is space finishes equal to the oracle)."""

import subprocess
import threading
import time

import pytest

from experiments.harness.faults import broker, grow_disk, kill_group, remove_disk, small_disk
from experiments.inputs.generate import GeneratorOptions, generate
from experiments.reference.oracle import run_oracle
from shared.catalogue import QUERY_NAMES
from shared.export import export_path
from tests.live import commits_cover, empty_landing, follow_until

pytestmark = [pytest.mark.crash, pytest.mark.kafka]
OUTAGE_S = 30.0
RATE = 100.0  # lines per second: the 2,000 lines take 20 s, the outage starts 6 s in


@pytest.fixture(scope="module")
def fault_input(generated_input):
    return generated_input(rows=2000, seed=31, files=4, days=2)


@pytest.mark.parametrize("build", ["kappa", "lambda"])
def test_a_broker_down_for_30_seconds_mid_replay_is_ridden_out(
    build, fault_input, tmp_path, kafka_bootstrap, new_topic
):
    from experiments.inputs.kafka_replay import replay_to_kafka
    from experiments.inputs.stream import count_raw_lines

    topic = new_topic(f"faults-{build}")
    # catalogue and every shipments file: the topic carries the sales only
    reference = empty_landing(fault_input, tmp_path / "reference", streamed_shipments=False)
    workdir = tmp_path / "w"
    last_seq = sum(count_raw_lines(p) for p in fault_input.glob("sales_*.csv")) - 1
    outage: dict[str, float] = {}
    failed: list[BaseException] = []

    def replay_with_an_outage() -> None:
        def stop_and_start() -> None:
            time.sleep(6)
            outage["down"] = time.monotonic()
            broker("down")
            time.sleep(OUTAGE_S)
            broker("up")
            outage["up"] = time.monotonic()

        fault = threading.Thread(target=stop_and_start)
        fault.start()
        try:  # the replayer rides the outage out too: its producer holds what it cannot deliver
            replay_to_kafka(
                fault_input, kafka_bootstrap, topic, rate_lines_per_second=RATE, log_dir=tmp_path / "replay"
            )
        except BaseException as error:  # noqa: BLE001 - reported by the condition below
            failed.append(error)
        fault.join()

    covered = commits_cover(workdir, build, QUERY_NAMES, last_seq)

    def caught_up() -> bool:
        assert not failed, f"the replay failed: {failed[0]!r}"
        return covered()

    out, err = follow_until(
        build,
        reference,
        workdir,
        extra=["--source", "kafka", "--bootstrap", kafka_bootstrap, "--topic", topic, "--interval", "1 second"],
        started=lambda: any(workdir.glob(f"{build}/**/checkpoints/*/metadata")),
        feed=lambda: threading.Thread(target=replay_with_an_outage, daemon=True).start(),
        caught_up=caught_up,
        timeout=900,
    )
    assert outage.get("up", 0) - outage.get("down", 0) >= OUTAGE_S, outage
    run_oracle(fault_input, tmp_path / "oracle")
    assert [
        q
        for q in QUERY_NAMES
        if export_path(workdir, build, q).read_bytes() != export_path(tmp_path / "oracle", "oracle", q).read_bytes()
    ] == [], err[-3000:]


def test_a_broker_that_stays_down_stops_the_run_clearly_and_a_restart_continues(
    fault_input, tmp_path, kafka_bootstrap, new_topic
):
    """Down for longer than the builds wait (shared/kafka.BROKER_PATIENCE_S): the follow run
    stops within a bounded time with one clear message and no stack trace; once the broker
    is back, the same command continues from its checkpoint and the exports equal the
    oracle's (the replayer's producer held the lines meanwhile)."""
    from experiments.inputs.kafka_replay import replay_to_kafka
    from experiments.inputs.stream import count_raw_lines
    from shared.kafka import BROKER_PATIENCE_S
    from tests.live import JAVA_STACK_FRAME, LAB

    topic = new_topic("faults-down")
    reference = empty_landing(fault_input, tmp_path / "reference", streamed_shipments=False)
    workdir = tmp_path / "w"
    last_seq = sum(count_raw_lines(p) for p in fault_input.glob("sales_*.csv")) - 1
    command = LAB + [
        "run",
        "kappa",
        "--follow",
        "--source",
        "kafka",
        "--bootstrap",
        kafka_bootstrap,
        "--topic",
        topic,
        "--interval",
        "1 second",
        "--input",
        str(reference),
        "--workdir",
        str(workdir),
    ]
    failed: list[BaseException] = []

    def replay() -> None:
        try:
            # the producer holds the lines through an outage longer than its default allows
            replay_to_kafka(
                fault_input,
                kafka_bootstrap,
                topic,
                rate_lines_per_second=RATE,
                flush_timeout_s=600,
                client_config={"message.timeout.ms": 600_000},
            )
        except BaseException as error:  # noqa: BLE001 - asserted below
            failed.append(error)

    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    replayer = threading.Thread(target=replay)
    down = None
    try:
        deadline = time.monotonic() + 300
        while not any(workdir.glob("kappa/**/checkpoints/*/metadata")):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()[-3000:]
            time.sleep(0.5)
        replayer.start()
        time.sleep(6)
        down = time.monotonic()
        broker("down")
        _, err = first.communicate(timeout=BROKER_PATIENCE_S + 240)
        stopped_after = time.monotonic() - down
    finally:
        if first.poll() is None:
            kill_group(first.pid)
        if down is not None:
            broker("up")  # for the rest of the test and the tests after it
    assert first.returncode == 2, err[-3000:]
    assert BROKER_PATIENCE_S - 30 <= stopped_after <= BROKER_PATIENCE_S + 240, stopped_after
    assert "does not answer (since" in err and "has not answered for about 3 minutes" in err, err[-3000:]
    assert "Traceback" not in err and not JAVA_STACK_FRAME.search(err), err[-3000:]

    out, err = follow_until(
        "kappa",
        reference,
        workdir,
        extra=["--source", "kafka", "--bootstrap", kafka_bootstrap, "--topic", topic, "--interval", "1 second"],
        started=lambda: True,
        feed=lambda: None,
        caught_up=commits_cover(workdir, "kappa", QUERY_NAMES, last_seq),
        timeout=600,
    )
    replayer.join(timeout=600)
    assert not failed, failed
    run_oracle(fault_input, tmp_path / "oracle")
    assert [
        q
        for q in QUERY_NAMES
        if export_path(workdir, "kappa", q).read_bytes() != export_path(tmp_path / "oracle", "oracle", q).read_bytes()
    ] == []


# ---------------------------------------------------------------------------------------
# A full disk: the workdir on a small tmpfs that fills up in the middle of a drain
# ---------------------------------------------------------------------------------------

# Each size is below what the build's workdir needs for DISK_INPUT (measured 2026-12-07:
# kappa 2.7 MiB, lambda 2.4, dstream 2.7 of which its landed copy of the input), so the
# run fills it part of the way through.
DISK_SIZES = {"kappa": "2m", "lambda": "1500k", "dstream": "2m"}


@pytest.fixture(scope="module")
def disk_input(tmp_path_factory):
    root = tmp_path_factory.mktemp("disk") / "in"
    generate(root, GeneratorOptions(rows=60_000, seed=5, files=12))
    run_oracle(root, root.parent / "oracle")
    return root


@pytest.mark.parametrize("build", sorted(DISK_SIZES))
def test_a_full_disk_stops_the_run_clearly_and_a_restart_finishes(build, disk_input, tmp_path):
    from tests.live import JAVA_STACK_FRAME, LAB

    mount = tmp_path / "small"
    mount.mkdir()
    refused = small_disk(mount, DISK_SIZES[build])
    if refused:
        pytest.skip(f"cannot mount a tmpfs here (root and CAP_SYS_ADMIN needed): {refused}")
    try:
        workdir = mount / "w"
        command = LAB + ["run", build, "--input", str(disk_input), "--workdir", str(workdir)]
        full = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert full.returncode == 2, full.stderr[-3000:]
        assert f"the file system of {workdir}" in full.stderr and "is full" in full.stderr, full.stderr[-3000:]
        assert "Traceback" not in full.stderr and not JAVA_STACK_FRAME.search(full.stderr), full.stderr[-3000:]
        grow_disk(mount, "400m")  # space freed
        again = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
        oracle = disk_input.parent / "oracle"
        assert [
            q
            for q in (*QUERY_NAMES, "_accounting")
            if (workdir / "results" / build / f"{q}.{'json' if q == '_accounting' else 'csv'}").read_bytes()
            != (oracle / "results" / "oracle" / f"{q}.{'json' if q == '_accounting' else 'csv'}").read_bytes()
        ] == []
    finally:
        remove_disk(mount)
