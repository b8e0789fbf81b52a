"""What a checkpoint holds, read from its files: crash leftovers are cleared, other logic
is refused with the replay remedy, and neither is guessed from an exception's words."""

import json
from pathlib import Path

import pytest

from shared import checkpoints
from shared.checkpoints import CheckpointMismatch


def _leftovers_of_a_crashed_start(root: Path) -> None:
    """What a SIGKILL in the first micro-batch leaves (seen on Spark 4.2): a temporary
    offsets file that was never renamed, and the state store's metadata."""
    (root / "offsets").mkdir(parents=True)
    (root / "offsets" / ".0.5f1c2d3e-tmp").write_text("v1\n")
    (root / "state" / "0" / "_metadata").mkdir(parents=True)
    (root / "state" / "0" / "_metadata" / "metadata").write_text("{}")
    (root / "commits").mkdir()
    (root / "metadata").write_text('{"id":"8d0f5f8e-0000-4000-8000-000000000001"}\n')


def test_a_checkpoint_without_a_planned_batch_loses_its_leftovers_and_keeps_its_id(tmp_path):
    root = tmp_path / "ckpt"
    _leftovers_of_a_crashed_start(root)
    removed = checkpoints.clear_unstarted(root)
    assert removed == ["offsets/.0.5f1c2d3e-tmp", "state/0"]
    assert not (root / "offsets").exists() and not (root / "state").exists()
    assert checkpoints.query_id(root) == "8d0f5f8e-0000-4000-8000-000000000001"
    assert checkpoints.clear_unstarted(root) == []  # nothing more to clear


def test_a_checkpoint_with_a_planned_batch_is_never_touched(tmp_path):
    root = tmp_path / "ckpt"
    _leftovers_of_a_crashed_start(root)
    (root / "offsets" / "0").write_text("v1\n{}\n")  # batch 0 planned: its input is fixed
    assert checkpoints.planned_batches(root) == [0] and checkpoints.committed_batches(root) == []
    assert checkpoints.clear_unstarted(root) == []
    assert (root / "state" / "0" / "_metadata" / "metadata").exists()


def _f(x):
    return x + 1


def _g(x):
    return x + 2


def test_other_logic_on_a_used_checkpoint_is_refused_with_the_remedy(tmp_path):
    root = tmp_path / "ckpt"
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_f, 3600]), "Replay it.")
    assert json.loads((root / checkpoints.LOGIC_FILE).read_text())["query"] == "q"
    (root / "offsets").mkdir()
    (root / "offsets" / "0").write_text("v1\n{}\n")
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_f, 3600]), "Replay it.")  # same logic: fine
    for other in ([_g, 3600], [_f, 7200]):
        with pytest.raises(CheckpointMismatch, match="different query logic.*Replay it."):
            checkpoints.check_logic(root, "q", checkpoints.fingerprint(other), "Replay it.")


def test_other_logic_on_an_unused_checkpoint_just_records_the_new_logic(tmp_path):
    root = tmp_path / "ckpt"
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_f]), "Replay it.")
    checkpoints.check_logic(root, "q", checkpoints.fingerprint([_g]), "Replay it.")
    assert json.loads((root / checkpoints.LOGIC_FILE).read_text())["logic"] == checkpoints.fingerprint([_g])


def test_prepare_reports_what_it_cleared(tmp_path):
    root = tmp_path / "ckpt"
    _leftovers_of_a_crashed_start(root)
    said = []
    checkpoints.prepare(root, "kappa_v1_log", "abc", "Replay it.", said.append)
    assert len(said) == 1 and "a crash before the first one" in said[0] and "offsets/.0.5f1c2d3e-tmp" in said[0]


def test_append_once_lands_a_batch_once_per_checkpoint(spark, tmp_path):
    """The lab's idempotent append (a mark in the newest commit, not Delta's txn state):
    a batch run again lands once, the next batch lands, and a new checkpoint (a new app
    id) whose batch ids start again at 0 is never mistaken for the old one."""
    table = str(tmp_path / "t")
    rows = lambda *values: spark.createDataFrame([(v,) for v in values], "n int")
    count = lambda: spark.read.format("delta").load(table).count()

    checkpoints.append_once(rows(1, 2), table, "app-a", 0)
    checkpoints.append_once(rows(1, 2), table, "app-a", 0)  # batch 0 again, after a crash
    assert count() == 2
    checkpoints.append_once(rows(3), table, "app-a", 1)
    checkpoints.append_once(rows(3), table, "app-a", 1)
    checkpoints.append_once(rows(9), table, "app-a", 0)  # behind the table: already in
    assert count() == 3
    checkpoints.append_once(rows(4), table, "app-b", 0)  # a new checkpoint starts at 0
    assert count() == 4


def test_append_once_recognises_delta_txn_commits_of_earlier_runs(spark, tmp_path):
    """A table written with txnAppId/txnVersion (earlier releases) by the same checkpoint:
    its last batch run again after the upgrade still lands once."""
    table = str(tmp_path / "t")
    frame = spark.createDataFrame([(1,)], "n int")
    frame.write.format("delta").option("txnAppId", "app-a").option("txnVersion", 5).save(table)
    checkpoints.append_once(frame, table, "app-a", 5)
    assert spark.read.format("delta").load(table).count() == 1
    checkpoints.append_once(frame, table, "app-a", 6)
    assert spark.read.format("delta").load(table).count() == 2


def test_written_by_reads_only_this_app_ids_marks():
    mark = {"commitInfo": {"userMetadata": checkpoints.writer_mark("app-a", 3)}}
    assert checkpoints.written_by([mark], "app-a") == 3
    assert checkpoints.written_by([mark], "app-b") is None
    assert checkpoints.written_by([{"commitInfo": {"userMetadata": "a note of a user's"}}], "app-a") is None
    assert checkpoints.written_by([{"txn": {"appId": "app-a", "version": 7}}], "app-a") == 7


def test_a_compaction_after_a_batch_does_not_make_it_land_twice(spark, tmp_path):
    """shared/table_upkeep.compact between two of a writer's batches: the table keeps its
    rows in fewer files, and the batch run again after a crash (the compaction is the
    newest commit now) still finds its mark and lands once."""
    from shared import table_upkeep
    from shared.delta_log import active_files, is_compaction, latest_commit

    table = str(tmp_path / "t")
    rows = lambda *values: spark.createDataFrame([(v,) for v in values], "n int").coalesce(1)
    for batch in range(3):
        checkpoints.append_once(rows(batch), table, "app-a", batch)
    assert active_files(table) == 3
    table_upkeep.compact(spark, table)
    assert active_files(table) == 1 and is_compaction(latest_commit(table)[1])
    checkpoints.append_once(rows(2), table, "app-a", 2)  # batch 2 again, after a crash
    assert sorted(r.n for r in spark.read.format("delta").load(table).collect()) == [0, 1, 2]
    checkpoints.append_once(rows(3), table, "app-a", 3)
    assert active_files(table) == 2


def test_pruning_older_batches_keeps_the_newest_and_the_writers_mark(spark, tmp_path):
    """DStream's published totals: after the older batches' rows are deleted, a reader still
    sees the newest batch, and that batch run again finds its mark on the delete's commit."""
    from legacy_dstream.publish import PUBLISHER
    from shared import table_upkeep
    from shared.delta_log import active_files, latest_commit

    table = str(tmp_path / "t")
    rows = lambda batch: spark.createDataFrame(
        [(batch, "city", "a"), (batch, "city", "b")], "batch_ms long, q string, k string"
    )
    for batch in (1000, 2000, 3000):
        checkpoints.append_once(rows(batch).coalesce(1), table, PUBLISHER, batch)
    table_upkeep.prune_before(spark, table, "batch_ms", 3000, checkpoints.writer_mark(PUBLISHER, 3000))
    assert checkpoints.written_by(latest_commit(table)[1], PUBLISHER) == 3000
    assert active_files(table) == 1
    checkpoints.append_once(rows(3000).coalesce(1), table, PUBLISHER, 3000)  # run again after a crash
    assert sorted(r.batch_ms for r in spark.read.format("delta").load(table).collect()) == [3000, 3000]
    assert spark.conf.get("spark.databricks.delta.commitInfo.userMetadata", None) is None


def test_active_files_reads_the_checkpoint_and_the_commits_after_it(spark, tmp_path):
    """Counted from the log alone (no JVM) the same as Delta's own snapshot, across a
    checkpoint (every 10 commits) and an overwrite's removes."""
    from shared.delta_log import active_files

    table = str(tmp_path / "t")
    assert active_files(table) is None
    for n in range(12):
        spark.createDataFrame([(n,)], "n int").coalesce(1).write.format("delta").mode("append").save(table)
    assert (tmp_path / "t" / "_delta_log" / "_last_checkpoint").exists()
    assert active_files(table) == 12 == len(spark.read.format("delta").load(table).inputFiles())
    spark.createDataFrame([(0,)], "n int").coalesce(1).write.format("delta").mode("overwrite").save(table)
    assert active_files(table) == 1
