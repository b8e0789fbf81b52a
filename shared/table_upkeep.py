"""Keeping the tables a long-running build appends to fit for their readers.

A live build commits one small file per micro-batch to each table it appends to: after half an
hour at one batch a second, a reader of Kappa's `partials` lists and opens 1,800 files. Two
jobs, each run by the table's own writer between its commits (so no other writer races it):
- `compact`: Delta's OPTIMIZE (bin-packing) every `compact_every_batches` of the writer's
  batches (LAB_COMPACT_EVERY_BATCHES, default 50). It rewrites files with dataChange false:
  readers see the same rows, streaming readers skip it, and the writer's idempotence check
  looks past it (shared/delta_log.newest_write).
- `prune_before`: for a table where each batch appends a whole new result (DStream's
  published totals), delete the rows of older batches, in a commit marked as the writer's
  own batch (so a batch run again after a crash still finds its mark on the newest commit).
"""

from __future__ import annotations

from functools import cache


@cache
def every_batches() -> int:
    """LAB_COMPACT_EVERY_BATCHES: read once per process (a build's settings are its environment's)."""
    from shared.settings import LabSettings

    return LabSettings.from_env().compact_every_batches


def due(batch_id: int) -> bool:
    """Whether this batch of a writer is one that tidies its tables (not the first)."""
    return batch_id > 0 and batch_id % every_batches() == 0


def compact(spark, table: str) -> None:
    """Bin-pack the table's small files (Delta's OPTIMIZE); a table with one file is left as is."""
    from delta.tables import DeltaTable

    from shared.delta_log import active_files

    if (active_files(table) or 0) > 1:
        DeltaTable.forPath(spark, table).optimize().executeCompaction()


def prune_before(spark, table: str, column: str, keep_from: int, mark: str) -> None:
    """Delete the rows whose `column` is below `keep_from`, the commit carrying `mark` as its
    userMetadata (the writer's mark of the batch doing it). Only the writer's thread may run
    this: the mark is set on the session for the one commit."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    key = "spark.databricks.delta.commitInfo.userMetadata"
    spark.conf.set(key, mark)
    try:
        DeltaTable.forPath(spark, table).delete(F.col(column) < F.lit(keep_from))
    finally:
        spark.conf.unset(key)
