"""Inputs whose files are not in event-time order (a user's monthly exports read April,
August, February, ...): `lab verify` says so plainly, and `lab replay --order event-time`
emits the same lines sorted by Order Date, with sequence numbers and the emission log.
No Spark here: the watermark model and the oracle are plain Python."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from experiments.harness.verify import EXPLAINED, compare_all, out_of_order_warning
from experiments.inputs import kafka_replay
from experiments.inputs.kafka_replay import replay_to_kafka
from experiments.inputs.replay import replay_to_landing
from experiments.inputs.schedule import LOG_CSV_NAME, LOG_JSON_NAME
from experiments.inputs.stream import EVENT_TIME_ORDER
from experiments.reference.oracle import compute, run_oracle
from experiments.reference.watermark_model import WatermarkModelResult, model
from shared.catalogue import QUERIES
from shared.export import export_path, render, results_dir
from shared.raw_lines import iter_raw_lines
from shared.settings import WorkloadSettings

HEADER_LINE = "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address"


def order_line(order_id: int, when: str) -> str:
    return f'{order_id},USB-C Charging Cable,2,11.95,{when},"917 1st St, Dallas, TX 75001"'


A1, A2, A3 = order_line(1, "04/02/19 10:00"), order_line(2, "04/02/19 09:00"), order_line(3, "04/03/19 12:00")
G1, G2 = order_line(4, "08/05/19 08:00"), order_line(5, "08/05/19 08:30")
F1, F2 = order_line(6, "02/10/19 10:00"), order_line(7, "02/11/19 11:00")
BAD = '8,USB-C Charging Cable,two,11.95,02/10/19 10:05,"917 1st St, Dallas, TX 75001"'
MONTHLY_EXPORTS = {  # name order: april, august, february
    "april.csv": "\n".join([HEADER_LINE, A1, A2, A3]) + "\n",
    "august.csv": "\n".join([HEADER_LINE, G1, G2, ",,,,,"]) + "\n",
    # saved by a spreadsheet program: a byte-order mark, \r\n, no final line end; F1 twice
    "february.csv": "\ufeff" + "\r\n".join([HEADER_LINE, F1, F1, BAD, F2]),
}
# The lines without an Order Date first, in input order; then the rest by Order Date (stable).
EVENT_TIME_LINES = [HEADER_LINE, HEADER_LINE, ",,,,,", HEADER_LINE, BAD, F1, F1, F2, A2, A1, A3, G1, G2]


@pytest.fixture
def monthly_exports(tmp_path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    for name, text in MONTHLY_EXPORTS.items():
        (folder / name).write_bytes(text.encode("utf-8"))
        os.utime(folder / name, ns=(1_600_000_000 * 10**9,) * 2)  # same time: name order is arrival order
    return folder


def landed_lines(landing: Path) -> list[str]:
    return [text for path in sorted(landing.glob("*.csv")) for text in iter_raw_lines(path)]


def read_log(log_dir: Path) -> tuple[list[dict], dict]:
    with open(log_dir / LOG_CSV_NAME, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle)), json.loads((log_dir / LOG_JSON_NAME).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------
# lab replay --order event-time
# ---------------------------------------------------------------------------------------


def test_event_time_replay_lands_the_lines_sorted_by_order_date(monthly_exports, tmp_path):
    landing, logs = tmp_path / "landing", tmp_path / "logs"
    summary = replay_to_landing(monthly_exports, landing, None, log_dir=logs, order=EVENT_TIME_ORDER)

    assert sorted(p.name for p in landing.iterdir()) == [
        "000000-event-time.csv",
        "000001-event-time.csv",
        "000002-event-time.csv",
    ]
    assert landed_lines(landing) == EVENT_TIME_LINES
    rows, summary_json = read_log(logs)
    # The units keep the input files' sizes, so seq ranges and the schedule are file order's.
    assert [(int(r["first_seq"]), int(r["last_seq"]), int(r["lines"])) for r in rows] == [
        (0, 3, 4),
        (4, 7, 4),
        (8, 12, 5),
    ]
    assert [r["source_file"] for r in rows] == [
        "april.csv;august.csv;february.csv",
        "february.csv",
        "april.csv;august.csv",
    ]
    assert summary.order == summary_json["order"] == "event-time" and summary.lines == 13


def test_event_time_replay_loses_nothing_and_changes_no_result(monthly_exports, tmp_path):
    replay_to_landing(monthly_exports, tmp_path / "landing", order=EVENT_TIME_ORDER)
    before, after = compute(monthly_exports), compute(tmp_path / "landing")
    assert (after.raw_lines, after.valid_lines, after.quarantine) == (
        before.raw_lines,
        before.valid_lines,
        before.quarantine,
    )
    assert after.results == before.results


def test_file_order_is_the_default_and_lands_the_files_as_they_are(monthly_exports, tmp_path):
    summary = replay_to_landing(monthly_exports, tmp_path / "landing")
    assert summary.order == "file"
    assert sorted(p.name for p in (tmp_path / "landing").iterdir()) == [
        "000000-april.csv",
        "000001-august.csv",
        "000002-february.csv",
    ]
    assert (tmp_path / "landing" / "000002-february.csv").read_bytes() == (
        monthly_exports / "february.csv"
    ).read_bytes()


def test_an_unknown_order_is_a_clear_error_before_anything_lands(monthly_exports, tmp_path):
    with pytest.raises(ValueError, match="order must be one of file, event-time"):
        replay_to_landing(monthly_exports, tmp_path / "landing", order="random")
    assert not (tmp_path / "landing").exists()


class FakeProducer:
    """Stands in for confluent_kafka's Producer: keeps the messages, acknowledges each."""

    def __init__(self):
        self.messages = []

    def produce(self, topic, value, key, headers, on_delivery):
        self.messages.append((key.decode(), dict((k, v.decode()) for k, v in headers), value.decode()))
        on_delivery(None, None)

    def poll(self, _timeout):
        return 0

    def flush(self, _timeout):
        return 0


def test_event_time_replay_to_kafka_keeps_each_line_s_own_file_and_numbers_the_stream(monthly_exports, monkeypatch):
    producer = FakeProducer()
    monkeypatch.setattr(kafka_replay, "check_broker", lambda *args: None)
    monkeypatch.setattr(
        kafka_replay, "_ensure_topic", lambda *args: {"topic": "t", "partitions": 1, "topic_created": True, "notes": []}
    )
    monkeypatch.setattr(kafka_replay, "_producer", lambda config: producer)
    summary = replay_to_kafka(monthly_exports, "127.0.0.1:9", "t", chunk_lines=5, order=EVENT_TIME_ORDER)

    assert [text for _key, _headers, text in producer.messages] == EVENT_TIME_LINES
    assert [int(headers["seq"]) for _key, headers, _text in producer.messages] == list(range(13))
    first_april = EVENT_TIME_LINES.index(A2)
    key, headers, _ = producer.messages[first_april]
    assert (key, headers["file_seq"]) == ("april.csv", "0")
    assert summary.units == 3 and summary.order == "event-time"  # 13 lines in chunks of 5, across files


# ---------------------------------------------------------------------------------------
# lab verify: a plain warning when many lines come behind the watermark
# ---------------------------------------------------------------------------------------


def test_the_model_drops_the_february_lines_and_counts_duplicates_apart(monthly_exports):
    result = model(monthly_exports, WorkloadSettings(), files_per_batch=1)
    assert result.valid_lines == 8
    assert result.dropped_lines == 3  # F1, its exact duplicate and F2: the third batch, behind August


def test_out_of_order_input_gets_a_plain_warning(monthly_exports):
    result = model(monthly_exports, WorkloadSettings(), files_per_batch=1)
    warning = out_of_order_warning(result, "kappa", 7200)
    assert warning.startswith(
        "input files are not in event-time order: 3 of 8 valid lines (37.5%) arrived "
        "behind the 2 h watermark and were dropped by kappa's window_revenue"
    )
    assert "lab replay --order event-time" in warning and "LAB_WATERMARK_SECONDS" in warning


def test_the_same_input_replayed_in_event_time_order_gets_no_warning(monthly_exports, tmp_path):
    replay_to_landing(monthly_exports, tmp_path / "landing", order=EVENT_TIME_ORDER)
    result = model(tmp_path / "landing", WorkloadSettings(), files_per_batch=1)
    assert result.dropped == [] and out_of_order_warning(result, "kappa", 7200) is None


@pytest.mark.parametrize("dropped_lines, warned", [(10, False), (11, True)])
def test_the_warning_starts_above_one_percent_of_the_valid_lines(dropped_lines, warned):
    dropped = [{"file": "a.csv", "line_number": n} for n in range(dropped_lines) for _window in range(2)]
    result = WatermarkModelResult(rows=[], dropped=dropped, batches=3, valid_lines=1000)
    assert (out_of_order_warning(result, "kappa", 5400) is not None) == warned
    if warned:
        assert "11 of 1,000 valid lines (1.1%) arrived behind the 90 min watermark" in out_of_order_warning(
            result, "kappa", 5400
        )


def test_verify_explains_the_drops_and_adds_the_warning(monthly_exports, tmp_path):
    """compare_all on a work folder holding the oracle's exports and a kappa window_revenue
    that is the watermark model's (as the kappa build writes it on this input)."""
    workdir, settings = tmp_path / "w", WorkloadSettings()
    run_oracle(monthly_exports, workdir, settings)
    kept = model(monthly_exports, settings, files_per_batch=1)
    export_path(workdir, "kappa", "window_revenue").parent.mkdir(parents=True)
    export_path(workdir, "kappa", "window_revenue").write_text(render(QUERIES["window_revenue"], kept.rows))
    (results_dir(workdir, "kappa") / "_late.json").write_text(
        json.dumps({"source": "files", "max_files_per_trigger": 1, "rows_dropped_by_watermark": {"window_revenue": 3}})
    )

    outcome = compare_all(workdir, {}, builds=("kappa",), input_dir=monthly_exports, settings=settings)
    window = next(c for c in outcome.comparisons if c.query == "window_revenue")
    assert window.status == EXPLAINED and "of 3 late lines" in window.detail
    assert len(outcome.warnings) == 1 and "3 of 8 valid lines (37.5%)" in outcome.warnings[0]
    assert outcome.to_json()["warnings"] == outcome.warnings
