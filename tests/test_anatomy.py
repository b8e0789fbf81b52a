"""The anatomy of a live micro-batch, read from what a follow run wrote: Spark's progress
reports split by their durations, a foreachBatch sink split by its timed steps, a query
timed by steps alone (DStream), and only the batches of the measured window."""

import json
from pathlib import Path

from experiments.harness.anatomy import anatomy_metrics, part_of, streaming_queries


def _lines(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _report(batch_id: int, at: str, add_batch: int) -> dict:
    return {
        "id": "q",
        "batchId": batch_id,
        "timestamp": at,
        "durationMs": {
            "latestOffset": 100,
            "getBatch": 10,
            "queryPlanning": 40,
            "walCommit": 50,
            "addBatch": add_batch,
            "commitOffsets": 60,
            "triggerExecution": add_batch + 300,
        },
    }


def test_the_parts_of_each_query_are_medians_over_the_measured_batches(tmp_path):
    progress = tmp_path / "kappa" / "v1" / "progress"
    # 2026-12-07T00:00:00Z is 1796601600 s since the epoch
    _lines(
        progress / "log.jsonl",
        [
            _report(0, "2026-12-07T00:00:00.000Z", 9000),  # warm-up: before the window
            _report(1, "2026-12-07T00:00:10.000Z", 1000),
            _report(2, "2026-12-07T00:00:12.000Z", 2000),
            _report(3, "2026-12-07T00:00:14.000Z", 3000),
        ],
    )
    _lines(
        progress / "log.steps.jsonl",
        [
            {"batchId": b, "startedAt": 0, "stepsMs": {"delta_appends": ms}}
            for b, ms in ((0, 5000), (1, 400), (2, 600), (3, 800))
        ],
    )
    _lines(progress / "run.phases.jsonl", [{"batchId": 0, "stepsMs": {"ingest": 1}}])  # a drain's: not a query
    _lines(
        tmp_path / "dstream" / "progress" / "batches.steps.jsonl",
        [{"batchId": 1_000, "startedAt": 1796601611.0, "stepsMs": {"state_job": 700, "delta_publish": 300}}],
    )

    assert [name for _, name in streaming_queries(tmp_path)] == ["batches", "log"]
    rows = {
        (m.query, part_of(m.metric)): m.value for m in anatomy_metrics("x", tmp_path, 1796601605.0, 1796601620.0, 10)
    }
    assert rows[("log", "find_input")] == 100 and rows[("log", "plan")] == 50  # getBatch + queryPlanning
    assert rows[("log", "sink_delta_appends")] == 600  # median of batches 1-3, not the warm-up's
    assert rows[("log", "sink_other")] == 1400  # addBatch beyond the timed steps
    assert rows[("log", "other")] == 300 - 260  # triggerExecution beyond every duration
    assert ("log", "sink") not in rows  # split into its steps
    assert rows[("batches", "sink_state_job")] == 700 and rows[("batches", "sink_delta_publish")] == 300
    assert part_of("latency_p50_s") is None
