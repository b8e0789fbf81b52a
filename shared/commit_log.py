"""The commit log: one row per result commit, what latency is read from.

docs/design.md, "The commit log": every build appends to `WORKDIR/commits/<build>.csv`
one row per result commit with the columns `COMMIT_COLUMNS`:

- `query`: the query whose result was committed;
- `visible_at`: UTC seconds since the epoch, with milliseconds, taken AFTER the commit is
  readable (after the Delta commit, the file rename, the collected snapshot);
- `max_seq`: the highest input sequence number (the replayer's global line `seq`, see
  shared/sequence.py) the committed result includes; -1 when it includes no line yet;
- `rows`: the number of rows of the result (each build says what exactly it counts; -1
  when the build cannot know it cheaply).

`visible_at` is taken by the appender when the caller does not give it: call `append`
right after the commit returns, so "now" is the moment the result became readable. A
caller that takes the time itself (a listener told of a commit) passes `visible_at`.

Several streaming queries and threads of one driver append to the same build file: each
append holds a lock shared by every `CommitLog` of that path in this process, opens the
file in append mode, writes whole lines in one write and flushes, and writes the header
only when the file is new (empty). Rows are never rewritten, so no atomic replace here.
A `CommitLog` holds only its path, so it pickles (DStream checkpoints pickle the
functions that use it); the lock is looked up by path.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

COMMIT_COLUMNS = ("query", "visible_at", "max_seq", "rows")
COMMITS_DIR_NAME = "commits"
NO_SEQ = -1  # max_seq of a result that includes no input line yet

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class Commit(NamedTuple):
    query: str
    visible_at: float  # UTC epoch seconds (millisecond precision in the file)
    max_seq: int
    rows: int


def commit_log_path(workdir: str | os.PathLike, build: str) -> Path:
    """`WORKDIR/commits/<build>.csv`."""
    return Path(workdir) / COMMITS_DIR_NAME / f"{build}.csv"


def _lock_for(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def _csv_text(rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _formatted(commit: Commit) -> tuple[str, str, str, str]:
    return commit.query, f"{commit.visible_at:.3f}", str(int(commit.max_seq)), str(int(commit.rows))


def append_csv_rows(path: str | os.PathLike, columns: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    """Append whole CSV lines to `path` under the path's lock, with the header first when
    the file is new; one write and a flush, so a reader never sees half a line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(path):
        with open(path, "a", encoding="utf-8", newline="") as handle:
            header = [tuple(columns)] if handle.tell() == 0 else []  # append mode: at the end
            handle.write(_csv_text([*header, *rows]))
            handle.flush()


class CommitLog:
    """Appends commit rows to one build's commit log file (thread-safe, picklable)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def for_build(cls, workdir: str | os.PathLike, build: str) -> CommitLog:
        return cls(commit_log_path(workdir, build))

    def append(self, query: str, max_seq: int, rows: int, visible_at: float | None = None) -> Commit:
        """One commit row; `visible_at` defaults to now: call this right after the commit."""
        return self.append_many([query], max_seq, {query: rows}, visible_at)[0]

    def append_many(
        self, queries: Iterable[str], max_seq: int, rows: dict[str, int], visible_at: float | None = None
    ) -> list[Commit]:
        """One row per query for commits that became readable together (same time, same
        max_seq), written in one go."""
        visible_at = time.time() if visible_at is None else visible_at
        commits = [Commit(query, visible_at, max_seq, rows[query]) for query in queries]
        append_csv_rows(self.path, COMMIT_COLUMNS, [_formatted(c) for c in commits])
        return commits

    def clear(self) -> None:
        """Forget earlier runs' rows (a fresh run starts a new log)."""
        with _lock_for(self.path):
            self.path.unlink(missing_ok=True)

    def read(self) -> list[Commit]:
        return read_commits(self.path)


def read_commits(path: str | os.PathLike) -> list[Commit]:
    """Every row of a commit log, in file (append) order; no file = no commits."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COMMIT_COLUMNS:
            raise ValueError(f"{path}: columns are {reader.fieldnames}, expected {list(COMMIT_COLUMNS)}")
        return [Commit(r["query"], float(r["visible_at"]), int(r["max_seq"]), int(r["rows"])) for r in reader]
