"""Each batch's output and its publication: the running totals after a batch, written
under its batch time (`Snapshot`, what a run started again reads back), and the same whole
result published to the Delta table readers query (`publish`), with what a reader of that
table sees (`served`).

Apart from the application (app.py), which calls `Snapshot.write` and `publish` from its
drain, once per batch that read files.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

from legacy_dstream import pipeline as P
from shared import checkpoints
from shared.atomic import write_bytes_atomic


@dataclass(frozen=True)
class Snapshot:
    """One batch's output: the running totals after it, and the files each batch up to it
    read (batch time in ms -> landed names). Written atomically under its batch time."""

    batch_ms: int
    batch_files: dict[int, list[str]]
    totals: dict[str, list]

    @property
    def files(self) -> set[str]:
        return {name for names in self.batch_files.values() for name in names}

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / f"batch-{self.batch_ms:015d}.pickle", pickle.dumps(self))
        for older in sorted(folder.glob("batch-*.pickle"))[:-2]:  # the newest two are enough
            older.unlink(missing_ok=True)

    @staticmethod
    def latest(folder: Path) -> Snapshot | None:
        outputs = sorted(folder.glob("batch-*.pickle")) if folder.is_dir() else []
        return pickle.loads(outputs[-1].read_bytes()) if outputs else None


RESULTS_SCHEMA = "batch_ms bigint, query string, key string, row string"
PUBLISHER = "dstream"  # the writer mark's app id: batch times only grow within one checkpoint's table


def published_rows(snapshot: Snapshot) -> list[tuple[int, str, str, str]]:
    """The serving table's rows of a batch's output: per query and key, the batch time, the
    key and the result row as JSON (the export's columns; the line accounting as outcome
    and lines)."""
    rows = []
    for query, pairs in sorted(snapshot.totals.items()):
        for key, value in pairs:
            row = {"outcome": key, "lines": value[0]} if query == P.LINE_ACCOUNTING else P.export_row(query, key, value)
            rows.append((snapshot.batch_ms, query, json.dumps(key, default=str), json.dumps(row, default=str)))
    return rows


def publish(snapshot: Snapshot, table: str) -> None:
    """Append this batch's whole result to the Delta table, once per batch time (a batch run
    again after a crash finds its commit there and writes nothing). Appended rather than
    overwritten: an overwrite makes Delta reconstruct the table's files with Spark jobs at
    every batch; a reader takes the rows of the newest `batch_ms` (`served`). Once the table
    holds `compact_every_batches` batches' files, the older batches' rows are deleted (one
    commit marked as this batch's): a reader's scan stays one batch's worth, not the run's."""
    from pyspark.sql import SparkSession

    from shared.delta_log import active_files
    from shared.table_upkeep import every_batches, prune_before

    spark = SparkSession.builder.getOrCreate()  # the running application's session
    frame = spark.createDataFrame(published_rows(snapshot), RESULTS_SCHEMA).coalesce(1)
    checkpoints.append_once(frame, table, PUBLISHER, snapshot.batch_ms)
    if (active_files(table) or 0) >= every_batches():
        prune_before(spark, table, "batch_ms", snapshot.batch_ms, checkpoints.writer_mark(PUBLISHER, snapshot.batch_ms))


def served(spark, table: str):
    """What a reader of the serving table sees: the newest batch's rows."""
    from pyspark.sql import functions as F

    results = spark.read.format("delta").load(table)
    return results.where(F.col("batch_ms") == results.agg(F.max("batch_ms")).first()[0])
