"""Which input lines a Delta table's versions include, for the commit log.

A build that appends parsed lines to a Delta table (Lambda's master dataset, Kappa's
clean lines) and streams from it needs, for each downstream micro-batch, the highest
input `seq` its result includes. Two facts give it:
- the writer records, after each append, the table version that holds the batch's lines
  and the highest input seq the batch read (`VersionSeqLog`);
- a Delta stream's checkpoint records the versions each micro-batch read
  (`versions_read`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from shared import checkpoints
from shared.commit_log import NO_SEQ, append_csv_rows

DELTA_END_INDEX = 2**63 - 1 - 100  # Delta's DeltaSourceOffset.END_INDEX: "all of this version"


def delta_versions_through(end_offset_json: str) -> int:
    """The last table version a Delta stream has wholly read, from its end offset.

    Delta's offset is (reservoirVersion, index): index END_INDEX means every file of that
    version was read; a negative index (the base or metadata markers) means none of it yet,
    and a file index means part of it: both count only the versions before (never claims
    lines it may not include).
    """
    offset = json.loads(end_offset_json)
    version = int(offset["reservoirVersion"])
    return version if int(offset["index"]) == DELTA_END_INDEX else version - 1


def versions_read(checkpoint: str, batch_id: int) -> int | None:
    """The last table version wholly read once `batch_id` is done, from the checkpoint's
    offsets log (written before the batch runs); None without a Delta source."""
    for offset in checkpoints.batch_offsets(checkpoint, batch_id):
        if isinstance(offset, dict) and "reservoirVersion" in offset:
            return delta_versions_through(json.dumps(offset))
    return None


def versions_committed(checkpoint) -> int | None:
    """The last table version wholly read by a Delta stream's last committed batch (its
    sink writes done); None before its first."""
    done = checkpoints.committed_batches(checkpoint)
    return versions_read(checkpoint, done[-1]) if done else None


class VersionSeqLog:
    """A CSV of (writer batch, table version, highest input seq): versions <= `version`
    include input up to `max_seq`.

    A writer records a batch's row before its commit is visible (`next_version`): a
    stream may read the new version the moment it commits, and must find its seq. A batch
    that adds no version (nothing to append, or replayed after a crash with its append
    already in) leaves a row naming a later version, which includes its lines too; a batch
    replayed after a crash may add a second row: harmless, readers take maxima."""

    def __init__(self, path: str | os.PathLike, columns: tuple[str, str, str] = ("batch_id", "version", "max_seq")):
        self.path, self.columns = Path(path), columns

    def record(self, batch_id: int, version: int | None, max_seq: int) -> None:
        append_csv_rows(self.path, self.columns, [(batch_id, NO_SEQ if version is None else version, max_seq)])

    def max_seq_through(self, version: int | None) -> int:
        """The highest input seq that versions <= `version` include (NO_SEQ for none)."""
        if version is None or not self.path.exists():
            return NO_SEQ
        _, version_column, seq_column = self.columns
        with open(self.path, encoding="utf-8", newline="") as handle:
            return max(
                (int(r[seq_column]) for r in csv.DictReader(handle) if int(r[version_column]) <= version),
                default=NO_SEQ,
            )
