"""shared/progress_log.py: reading back what streaming queries reported."""
import json

from shared.progress_log import input_rows, read_progress


def test_a_batch_is_counted_once_per_query_even_when_reported_again(tmp_path):
    """A batch re-run after a crash reports again (counted once); two queries writing to one
    file (Lambda's speed layer of each cutoff) both number their batches from 0 (both kept)."""
    path = tmp_path / "speed_views.jsonl"
    records = [{"id": "cutoff-3", "batchId": 0, "numInputRows": 10},
               {"id": "cutoff-3", "batchId": 1, "numInputRows": 5},
               {"id": "cutoff-3", "batchId": 1, "numInputRows": 5},     # re-run after a crash
               {"id": "cutoff-7", "batchId": 0, "numInputRows": 20}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [(r["id"], r["batchId"]) for r in read_progress(path)] == [("cutoff-3", 0), ("cutoff-3", 1),
                                                                      ("cutoff-7", 0)]
    assert input_rows(path) == 35
    assert read_progress(tmp_path / "missing.jsonl") == []
