"""shared/progress_log.py: reading back what streaming queries reported."""

import json

from shared.progress_log import input_rows, read_progress


def test_a_batch_is_counted_once_per_query_even_when_reported_again(tmp_path):
    """A batch re-run after a crash reports again (counted once); two queries writing to one
    file (Lambda's speed layer of each cutoff) both number their batches from 0 (both kept)."""
    path = tmp_path / "speed_views.jsonl"
    records = [
        {"id": "cutoff-3", "batchId": 0, "numInputRows": 10},
        {"id": "cutoff-3", "batchId": 1, "numInputRows": 5},
        {"id": "cutoff-3", "batchId": 1, "numInputRows": 5},  # re-run after a crash
        {"id": "cutoff-7", "batchId": 0, "numInputRows": 20},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [(r["id"], r["batchId"]) for r in read_progress(path)] == [("cutoff-3", 0), ("cutoff-3", 1), ("cutoff-7", 0)]
    assert input_rows(path) == 35
    assert read_progress(tmp_path / "missing.jsonl") == []


def test_a_progress_report_that_cannot_be_written_is_said_once_and_raises_nothing(tmp_path, capsys):
    """A full disk (here: a path under a file) must not throw into Spark's listener bus,
    whose stack trace would be printed beside the run's own one-line message."""
    from shared import progress_log

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    for _ in range(2):
        progress_log.write_report(blocked / "progress.jsonl", '{"name": "q_unwritable", "batchId": 3}')
    said = capsys.readouterr().err
    assert said.count("the progress of q_unwritable (batch 3) could not be kept") == 1, said
    assert "watermark dropped" in said


def test_a_progress_report_is_kept_as_one_json_line(tmp_path):
    from shared import progress_log

    path = tmp_path / "q.jsonl"
    for batch in (0, 1):
        progress_log.write_report(path, f'{{"id": "q-1", "name": "q", "batchId": {batch}, "numInputRows": 5}}')
    assert [r["batchId"] for r in read_progress(path)] == [0, 1] and input_rows(path) == 10
