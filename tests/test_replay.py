"""The replayer (experiments/inputs/ stream.py, schedule.py, replay.py, kafka_replay.py): raw-line
rules, atomic landing, the open-loop schedule and its log, and Kafka replay against the real
broker (`-m kafka`)."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from experiments.inputs import replay
from experiments.inputs.kafka_replay import KafkaUnavailableError, replay_to_kafka
from experiments.inputs.replay import replay_to_landing
from experiments.inputs.schedule import LOG_COLUMNS, LOG_CSV_NAME, LOG_JSON_NAME
from experiments.inputs.stream import ReplayError, count_raw_lines, iter_raw_lines
from experiments.reference.oracle import read_raw_lines
from shared import atomic

HEADER_LINE = "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address"
# Every line-ending case of docs/data-rules.md: \r\n, lone \r, \r\r\n, blank lines,
# non-ASCII text, and no final line ending.
AWKWARD_BYTES = (
    HEADER_LINE
    + "\r\n"
    + '176558,USB-C Charging Cable,2,11.95,04/19/19 08:46,"917 1st St, Dallas, TX 75001"\r'
    + ",,,,,\n\n"
    + "x\r\r\n"
    + '176559,Café Crème,1,99.99,04/07/19 22:30,"682 Chestnut St, Boston, MA 02215"'
).encode("utf-8")


def reference_lines(data: bytes) -> list[str]:
    """The rule stated directly: split at \\r\\n, \\r or \\n; a final ending adds no line."""
    text = data.decode("utf-8")
    if not text:
        return []
    parts = re.split(r"\r\n|\r|\n", text)
    return parts[:-1] if text.endswith(("\r", "\n")) else parts


def read_log(log_dir: Path) -> tuple[list[dict], dict]:
    with open(log_dir / LOG_CSV_NAME, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((log_dir / LOG_JSON_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def generated(generated_input) -> Path:
    return generated_input(rows=500, files=3, seed=1)


@pytest.fixture
def awkward_input(tmp_path) -> Path:
    """Two hand-made sales files plus names the replayer must skip."""
    root = tmp_path / "awkward"
    root.mkdir()
    (root / "a.csv").write_bytes(AWKWARD_BYTES)
    (root / "b.csv").write_bytes((HEADER_LINE + "\n,,,,,\n").encode())
    (root / "_skipped.csv").write_bytes(b"not a sales file\n")
    (root / ".hidden.csv").write_bytes(b"not a sales file\n")
    return root


def sales_paths(input_dir: Path) -> list[Path]:
    return sorted(p for p in input_dir.glob("*.csv") if not p.name.startswith((".", "_")))


# ---------------------------------------------------------------------------------------
# Raw lines
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"a",
        b"a\n",
        b"a\r\n",
        b"a\r",
        b"a\r\rb",
        b"a\r\r\nb\n\n",
        b"\r\n\r\n",
        AWKWARD_BYTES,
        AWKWARD_BYTES + b"\r\n",
    ],
)
def test_raw_lines_follow_the_line_ending_rules(tmp_path, data):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert list(iter_raw_lines(path)) == reference_lines(data)
    assert count_raw_lines(path) == len(reference_lines(data))


def test_raw_lines_across_read_buffer_boundaries(tmp_path):
    # Lines of every length 1..40 so some \r\n straddle the text reader's buffer edges.
    data = b"".join(b"x" * (n % 40 + 1) + (b"\r\n", b"\r", b"\n")[n % 3] for n in range(5000))
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    assert list(iter_raw_lines(path)) == reference_lines(data)


def test_raw_lines_agree_with_the_oracle(awkward_input, generated):
    for input_dir in (awkward_input, generated):
        ours = [(p.name, line) for p in sales_paths(input_dir) for line in iter_raw_lines(p)]
        assert ours == list(read_raw_lines(input_dir))


@pytest.mark.parametrize("order", ["file", "event-time"])
def test_lines_that_are_not_utf8_are_replayed_byte_for_byte(tmp_path, order):
    """Not a bad file: bad lines (quarantined `not_utf8` downstream), landed as they were read."""
    source = tmp_path / "in"
    source.mkdir()
    data = b"ok\n\xff\xfe\r\nCaf\xe9,x\n"
    (source / "a.csv").write_bytes(data)
    assert count_raw_lines(source / "a.csv") == 3
    replay_to_landing(source, tmp_path / "landing", order=order)
    (landed,) = (tmp_path / "landing").glob("*.csv")
    assert landed.read_bytes() == (data if order == "file" else b"ok\n\xff\xfe\nCaf\xe9,x\n")


# ---------------------------------------------------------------------------------------
# Landing directory
# ---------------------------------------------------------------------------------------


def test_landing_replay_lands_every_file_atomically_in_seq_order(generated, tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace

    def spying_replace(source, target):
        source, target = Path(source), Path(target)
        # the whole file is already under the hidden name, and the final name is not yet taken
        renames.append(
            (source.name, target.name, source.parent == target.parent, target.exists(), source.stat().st_size)
        )
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", spying_replace)  # the landing copy goes through shared/atomic.py
    landing, logs = tmp_path / "landing", tmp_path / "logs"
    summary = replay_to_landing(generated, landing, None, log_dir=logs)

    sources = sales_paths(generated)
    expected_names = [f"{seq:06d}-{p.name}" for seq, p in enumerate(sources)]
    landed_renames = [r for r in renames if r[1] in expected_names]
    assert [r[1] for r in landed_renames] == expected_names  # emission order = seq order
    for (tmp_name, name, same_dir, existed, size), source in zip(landed_renames, sources):
        assert tmp_name == f".{name}.tmp" and same_dir and not existed
        assert size == source.stat().st_size
    # no temporary file left; the reference data placed before the first sales file
    assert sorted(os.listdir(landing)) == sorted(expected_names + ["catalogue", "shipments"])
    assert [r[1] for r in renames[:2]] == ["catalogue", "shipments"]
    for name, source in zip(expected_names, sources):
        assert (landing / name).read_bytes() == source.read_bytes()  # byte-identical
    for part in ("catalogue", "shipments"):
        assert sorted(f.name for f in (landing / part).iterdir()) == sorted(
            f.name for f in (generated / part).iterdir()
        )

    total = sum(count_raw_lines(p) for p in sources)
    assert (summary.mode, summary.files, summary.units, summary.lines) == ("landing", 3, 3, total)
    rows, _ = read_log(logs)
    assert [row["target"] for row in rows] == expected_names
    assert [int(row["unit"]) for row in rows] == [0, 1, 2]
    assert int(rows[0]["first_seq"]) == 0 and int(rows[-1]["last_seq"]) == total - 1
    for before, after in zip(rows, rows[1:]):  # contiguous line ranges
        assert int(after["first_seq"]) == int(before["last_seq"]) + 1
    for row, source in zip(rows, sources):
        assert int(row["lines"]) == count_raw_lines(source) == int(row["last_seq"]) - int(row["first_seq"]) + 1
        assert row["source_file"] == source.name
        assert float(row["intended_s"]) == 0.0  # no rate: all due at the start


def test_reference_data_already_in_the_landing_directory_is_kept(generated, tmp_path):
    landing = tmp_path / "landing"
    (landing / "shipments").mkdir(parents=True)
    (landing / "shipments" / "mine.csv").write_text("order_id,product,ship_ts\n")
    replay_to_landing(generated, landing)
    # not replaced: the input's shipments files land beside it, each with its sales file
    assert sorted(f.name for f in (landing / "shipments").iterdir()) == ["mine.csv"] + sorted(
        f.name for f in (generated / "shipments").iterdir()
    )
    assert (landing / "catalogue").is_dir()


def test_each_shipments_file_lands_just_before_its_sales_file(generated, tmp_path, monkeypatch):
    """The shipments are a stream: the landing starts with the first file's, and shipments
    file k appears before sales file k (so no join waits for a shipment behind its orders)."""
    from experiments.harness.follow import empty_landing

    landing = empty_landing(generated, tmp_path / "landing")
    assert [f.name for f in (landing / "shipments").iterdir()] == ["shipments_0000.csv"]
    everything = empty_landing(generated, tmp_path / "reference", streamed_shipments=False)
    assert len(list((everything / "shipments").iterdir())) == 3
    landed = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (landed.append(Path(b).name), real_replace(a, b)))
    replay_to_landing(generated, landing)
    assert landed == [
        "000000-sales_0000.csv",
        "shipments_0001.csv",
        "000001-sales_0001.csv",
        "shipments_0002.csv",
        "000002-sales_0002.csv",
    ]
    for shipments in (generated / "shipments").iterdir():
        assert (landing / "shipments" / shipments.name).read_bytes() == shipments.read_bytes()


def test_landing_without_log_dir_writes_no_log(generated, tmp_path):
    summary = replay_to_landing(generated, tmp_path / "landing")
    assert summary.log_csv is None and summary.log_json is None
    assert all(not name.startswith(".") for name in os.listdir(tmp_path / "landing"))


def test_rate_fixes_intended_times_from_lines(generated, tmp_path):
    rate = 5000.0
    summary = replay_to_landing(generated, tmp_path / "landing", rate, log_dir=tmp_path / "logs")
    rows, summary_json = read_log(tmp_path / "logs")
    for row in rows:
        intended, emitted = float(row["intended_s"]), float(row["emitted_s"])
        assert intended == pytest.approx(int(row["first_seq"]) / rate, abs=1e-6)
        assert emitted >= intended - 1e-6  # never early
    assert summary.rate_lines_per_second == rate
    assert summary_json["rate_lines_per_second"] == rate
    assert summary_json["completed"] is True
    # the last file is due after the lines before it, so the run lasts at least that long
    assert summary.duration_s >= float(rows[-1]["intended_s"])


def test_slices_replayed_one_after_the_other_are_one_stream(generated, tmp_path):
    """Two replays of consecutive file slices into one landing directory land what one
    replay of the whole input lands, with the same seqs; each slice's clock starts at its
    first line, and a stepped slice's phases carry global seqs."""
    whole = replay_to_landing(generated, tmp_path / "whole", log_dir=tmp_path / "whole-log")
    files = whole.files
    assert files >= 2
    first = replay_to_landing(generated, tmp_path / "landing", 2000.0, log_dir=tmp_path / "a", file_slice=(0, 1))
    second = replay_to_landing(
        generated,
        tmp_path / "landing",
        log_dir=tmp_path / "b",
        file_slice=(1, files),
        rate_steps=[replay.RateStep(4000.0, 10_000)],
    )
    assert sorted(os.listdir(tmp_path / "landing")) == sorted(os.listdir(tmp_path / "whole"))
    whole_rows, _ = read_log(tmp_path / "whole-log")
    a_rows, _ = read_log(tmp_path / "a")
    b_rows, b_summary = read_log(tmp_path / "b")
    seqs = lambda rows: [(r["unit"], r["first_seq"], r["last_seq"], r["target"]) for r in rows]
    assert seqs(a_rows) + seqs(b_rows) == seqs(whole_rows)
    assert float(a_rows[0]["intended_s"]) == 0.0 and float(b_rows[0]["intended_s"]) == 0.0
    base = int(b_rows[0]["first_seq"])
    assert base > 0 and b_summary["rate_steps"][0]["first_seq"] == base
    assert [float(r["intended_s"]) for r in b_rows] == pytest.approx(
        [(int(r["first_seq"]) - base) / 4000.0 for r in b_rows], abs=1e-6
    )
    assert first.lines + second.lines == whole.lines
    with pytest.raises(ValueError, match="file slice"):
        replay_to_landing(generated, tmp_path / "bad", file_slice=(files, files + 1))


def test_slow_emission_does_not_shift_later_intended_times(generated, tmp_path, monkeypatch):
    rate, stall = 1000.0, 0.8  # 3 files of ~170 lines: files 1 and 2 are due well before 0.8 s
    real_land_file = replay.copy_file_atomic
    calls = []

    def slow_first_file(source, target):
        calls.append(target.name)
        if len(calls) == 1:
            time.sleep(stall)
        real_land_file(source, target)

    monkeypatch.setattr(replay, "copy_file_atomic", slow_first_file)
    summary = replay_to_landing(generated, tmp_path / "landing", rate, log_dir=tmp_path / "logs")
    rows, summary_json = read_log(tmp_path / "logs")

    intended = [float(row["intended_s"]) for row in rows]
    emitted = [float(row["emitted_s"]) for row in rows]
    assert intended == pytest.approx([int(row["first_seq"]) / rate for row in rows], abs=1e-6)
    assert intended[2] < stall  # file 2 was due during the stall...
    assert emitted[1] >= stall and emitted[2] >= stall  # ...so both went out late
    assert emitted[1] - intended[1] >= stall - intended[1] - 0.01  # the lag is in the log
    assert summary.lag_max_s >= stall - intended[1] - 0.01
    assert summary_json["lag_max_s"] == pytest.approx(summary.lag_max_s)
    assert summary.lag_p99_s <= summary.lag_max_s


def test_cpu_seconds_are_recorded(generated, tmp_path, monkeypatch):
    real_land_file = replay.copy_file_atomic

    def busy_land_file(source, target):
        deadline = time.process_time() + 0.1
        while time.process_time() < deadline:
            pass
        real_land_file(source, target)

    monkeypatch.setattr(replay, "copy_file_atomic", busy_land_file)
    summary = replay_to_landing(generated, tmp_path / "landing", log_dir=tmp_path / "logs")
    _, summary_json = read_log(tmp_path / "logs")
    assert summary.cpu_seconds >= 0.25  # 3 files x 0.1 s of CPU
    assert summary.cpu_seconds == pytest.approx(summary.cpu_user_s + summary.cpu_system_s)
    assert summary_json["cpu_seconds"] == pytest.approx(summary.cpu_seconds)
    assert summary.peak_rss_mib > 0


def test_summary_json_holds_start_time_rate_totals_and_lags(awkward_input, tmp_path):
    summary = replay_to_landing(awkward_input, tmp_path / "landing", 1e6, log_dir=tmp_path / "logs")
    rows, summary_json = read_log(tmp_path / "logs")
    assert list(rows[0]) == list(LOG_COLUMNS)
    assert summary_json["started_utc"].endswith("+00:00")
    assert summary_json["lines"] == summary.lines == len(reference_lines(AWKWARD_BYTES)) + 2
    assert summary_json["files"] == 2  # _skipped.csv and .hidden.csv skipped
    for key in ("lag_max_s", "lag_p99_s", "cpu_seconds", "rate_lines_per_second", "units"):
        assert key in summary_json
    assert summary.log_csv == str((tmp_path / "logs" / LOG_CSV_NAME).resolve())


def test_progress_reports_lines_up_to_the_total(generated, tmp_path):
    calls = []
    replay_to_landing(generated, tmp_path / "landing", progress=lambda done, total: calls.append((done, total)))
    total = sum(count_raw_lines(p) for p in sales_paths(generated))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1] == (total, total)


def test_landing_refuses_to_overwrite_earlier_landed_files(generated, tmp_path):
    replay_to_landing(generated, tmp_path / "landing")
    with pytest.raises(ReplayError, match="already holds 000000-"):
        replay_to_landing(generated, tmp_path / "landing")


def test_bad_arguments_are_clear_errors(generated, tmp_path):
    for bad_rate in (0, -5, float("nan"), float("inf"), True, "fast"):
        with pytest.raises(ValueError, match="rate_lines_per_second"):
            replay_to_landing(generated, tmp_path / f"landing-{uuid.uuid4().hex}", bad_rate)
    with pytest.raises(ReplayError, match="is the input directory"):
        replay_to_landing(generated, generated)
    with pytest.raises(ValueError, match="does not exist"):
        replay_to_landing(tmp_path / "missing", tmp_path / "landing")
    with pytest.raises(ValueError, match="topic"):
        replay_to_kafka(generated, "127.0.0.1:9092", "bad topic!")
    with pytest.raises(ValueError, match="bootstrap"):
        replay_to_kafka(generated, "no-port-here", "t")


def test_failed_emission_leaves_no_temporary_file_and_an_incomplete_log(generated, tmp_path, monkeypatch):
    real_copy = atomic.shutil.copyfile
    copies = []

    def failing_second_copy(source, target, **options):
        if not str(target).endswith(".tmp"):  # the reference data, placed first
            return real_copy(source, target, **options)
        copies.append(target)
        real_copy(source, target)  # the hidden file exists...
        if len(copies) == 2:
            raise OSError("disk full")  # ...when the copy fails

    monkeypatch.setattr(atomic.shutil, "copyfile", failing_second_copy)
    with pytest.raises(OSError, match="disk full"):
        replay_to_landing(generated, tmp_path / "landing", log_dir=tmp_path / "logs")
    assert sorted(os.listdir(tmp_path / "landing")) == [
        Path(copies[0]).name[1 : -len(".tmp")],
        "catalogue",
        "shipments",
    ]
    rows, summary_json = read_log(tmp_path / "logs")
    assert len(rows) == 1
    assert summary_json["completed"] is False and "disk full" in summary_json["error"]


# ---------------------------------------------------------------------------------------
# Kafka: fail fast without a broker
# ---------------------------------------------------------------------------------------


def test_unreachable_broker_fails_fast_with_a_clear_message(generated):
    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError) as raised:
        replay_to_kafka(generated, "127.0.0.1:1", f"replay-test-{uuid.uuid4().hex[:8]}")
    assert time.monotonic() - started < 20
    assert "127.0.0.1:1" in str(raised.value) and "make kafka-up" in str(raised.value)


def test_a_silent_server_is_not_a_broker_and_fails_within_the_timeout(generated):
    """Something listens on the port but never answers Kafka's protocol."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted = []
        threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
        bootstrap = f"127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(KafkaUnavailableError) as raised:
            replay_to_kafka(generated, bootstrap, "t", connect_timeout_s=2)
        assert time.monotonic() - started < 20
        assert bootstrap in str(raised.value) and "make kafka-up" in str(raised.value)


# ---------------------------------------------------------------------------------------
# Kafka: against the real broker
# ---------------------------------------------------------------------------------------


@pytest.fixture
def topic(new_topic):
    """A topic name no other test uses, deleted afterwards."""
    return new_topic("replay-test")


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    """Every message of every partition from the beginning (stops at `expected` + a short
    grace period, so a duplicate would still be seen)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"replay-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
        messages, deadline, grace_until = [], time.monotonic() + timeout_s, None
        while time.monotonic() < deadline and (grace_until is None or time.monotonic() < grace_until):
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
            if len(messages) >= expected and grace_until is None:
                grace_until = time.monotonic() + 1.0
        return messages
    finally:
        consumer.close()


def expected_lines(input_dir: Path) -> list[tuple[str, int, str]]:
    """(file name, file_seq, line) for every raw line, in global seq order."""
    return [(p.name, file_seq, line) for file_seq, p in enumerate(sales_paths(input_dir)) for line in iter_raw_lines(p)]


def headers_of(message) -> dict[str, str]:
    return {key: value.decode("ascii") for key, value in message.headers()}


@pytest.mark.kafka
@pytest.mark.parametrize("which", ["generated", "awkward"])
def test_kafka_replay_delivers_every_raw_line_once_in_order(
    which, generated, awkward_input, kafka_bootstrap, topic, tmp_path
):
    input_dir = generated if which == "generated" else awkward_input
    expected = expected_lines(input_dir)
    assert len(expected) == sum(count_raw_lines(p) for p in sales_paths(input_dir))

    summary = replay_to_kafka(input_dir, kafka_bootstrap, topic, None, chunk_lines=100, log_dir=tmp_path / "logs")
    messages = consume_all(kafka_bootstrap, topic, len(expected))

    assert (summary.topic, summary.partitions, summary.topic_created) == (topic, 1, True)
    assert summary.lines == len(expected) == len(messages)
    received = [(m.key().decode("utf-8"), int(headers_of(m)["file_seq"]), m.value().decode("utf-8")) for m in messages]
    assert received == expected  # every line once, in order
    assert [int(headers_of(m)["seq"]) for m in messages] == list(range(len(expected)))

    rows, summary_json = read_log(tmp_path / "logs")
    assert sum(int(row["lines"]) for row in rows) == len(expected)
    assert all(int(row["lines"]) <= 100 for row in rows)
    assert [int(row["first_seq"]) for row in rows] == sorted(int(row["first_seq"]) for row in rows)
    assert summary_json["completed"] is True and summary_json["topic"] == topic


@pytest.mark.kafka
def test_kafka_replay_follows_the_open_loop_schedule(generated, kafka_bootstrap, topic, tmp_path):
    rate = 2000.0
    summary = replay_to_kafka(generated, kafka_bootstrap, topic, rate, log_dir=tmp_path / "logs")
    rows, _ = read_log(tmp_path / "logs")
    assert len(rows) > 3  # per chunk, not per replay
    for row in rows:
        intended = float(row["intended_s"])
        assert intended == pytest.approx(int(row["first_seq"]) / rate, abs=1e-6)
        assert float(row["emitted_s"]) >= intended - 1e-6
        assert row["target"] == topic
    assert summary.cpu_seconds > 0
    assert summary.duration_s >= float(rows[-1]["intended_s"])
    assert len(consume_all(kafka_bootstrap, topic, summary.lines)) == summary.lines


@pytest.mark.kafka
def test_existing_topic_with_other_partitions_is_kept_and_reported(generated, kafka_bootstrap, topic):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)

    summary = replay_to_kafka(generated, kafka_bootstrap, topic, partitions=1)
    assert (summary.partitions, summary.topic_created) == (2, False)
    assert any("2 partitions" in note for note in summary.notes)

    messages = consume_all(kafka_bootstrap, topic, summary.lines)
    seqs = sorted(int(headers_of(m)["seq"]) for m in messages)
    assert seqs == list(range(summary.lines))  # each line once
    for name in {m.key() for m in messages}:  # in order within each file
        in_file = [int(headers_of(m)["seq"]) for m in messages if m.key() == name]
        assert in_file == sorted(in_file)
