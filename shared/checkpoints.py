"""What a Structured Streaming checkpoint holds, read from its files, for every build.

Two situations look alike in Spark's error messages and need opposite remedies:
- a checkpoint written by other query logic: continuing would mix two logics in one
  result, so the remedy is a new version replayed from the start of the log;
- a checkpoint left by a crash before its first batch was planned: it holds no batch at
  all, only half-written files (`offsets/.0.<uuid>.tmp`, state metadata), and Spark 4.1+
  refuses to start batch 0 over it (STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY). Nothing
  was written to any sink from it, so clearing those leftovers loses nothing.

The first is told apart by a logic fingerprint the lab writes beside Spark's files
(`lab-logic.json`); the second by the offsets log having no batch entry. Neither is
guessed from the words of an exception.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from shared.atomic import write_text_atomic

LOGIC_FILE = "lab-logic.json"
# The folders Spark requires empty when a query starts without any planned batch.
_MUST_BE_EMPTY_AT_START = ("offsets", "commits", "state")


class CheckpointMismatch(RuntimeError):
    """A checkpoint written by other query logic: reuse would give wrong results."""


def _batch_ids(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def planned_batches(checkpoint) -> list[int]:
    """Batch ids with an entry in the offsets log (planned: their input is fixed)."""
    return _batch_ids(Path(checkpoint) / "offsets")


def committed_batches(checkpoint) -> list[int]:
    """Batch ids whose sink writes completed (Spark's commit log)."""
    return _batch_ids(Path(checkpoint) / "commits")


def query_id(checkpoint) -> str | None:
    """The query id Spark keeps for a checkpoint (stable across restarts, new for a new
    checkpoint): the right `txnAppId` for idempotent Delta writes from foreachBatch."""
    path = Path(checkpoint) / "metadata"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8").splitlines()[0])["id"]
    except (ValueError, KeyError, IndexError):
        return None


def clear_unstarted(checkpoint) -> list[str]:
    """If the checkpoint has no planned batch, remove what a crashed start left in the
    folders Spark needs empty; returns what was removed (nothing when it is sound)."""
    root = Path(checkpoint)
    if planned_batches(root):
        return []
    removed = []
    for name in _MUST_BE_EMPTY_AT_START:
        folder = root / name
        if folder.is_dir() and any(folder.iterdir()):
            removed += sorted(str(p.relative_to(root)) for p in folder.iterdir())
            shutil.rmtree(folder)
    return removed


def fingerprint(parts: Iterable[object]) -> str:
    """A stable digest of query logic: functions count by their source code, other values
    (settings, query names, schemas) by their repr."""
    digest = hashlib.sha256()
    for part in parts:
        text = inspect.getsource(part) if callable(part) and not isinstance(part, type) else repr(part)
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _recorded(root: Path) -> dict | None:
    path = root / LOGIC_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recorded_logic(checkpoint) -> str | None:
    """The logic fingerprint recorded beside a checkpoint (None: none recorded)."""
    recorded = _recorded(Path(checkpoint))
    return recorded.get("logic") if recorded else None


def check_logic(checkpoint, query: str, logic: str, remedy: str, used: bool | None = None) -> None:
    """Stop before Spark starts when the checkpoint has processed input under other logic;
    record the logic of a checkpoint that has not processed anything yet. `used`: whether
    it has (default: a Structured Streaming checkpoint with a planned batch)."""
    root = Path(checkpoint)
    path = root / LOGIC_FILE
    recorded = _recorded(root)
    if planned_batches(root) if used is None else used:
        if recorded is None:
            return  # a checkpoint from before fingerprints: Spark's own checks apply
        if recorded.get("logic") != logic:
            raise CheckpointMismatch(
                f"streaming query {query} cannot continue from its checkpoint {root}: it was written by "
                f"different query logic (fingerprint {recorded.get('logic', '?')[:12]}, now {logic[:12]}). "
                f"Results stay as last committed. {remedy}"
            )
        return
    if recorded is None or recorded.get("logic") != logic:
        write_text_atomic(path, json.dumps({"query": query, "logic": logic}, indent=2) + "\n")


def prepare(
    checkpoint, query: str, logic: str, remedy: str, report: Callable[[str], None] = lambda message: None
) -> None:
    """Everything a build does to a checkpoint before starting its query."""
    removed = clear_unstarted(checkpoint)
    if removed:
        report(
            f"{query}: its checkpoint holds no planned batch (a crash before the first one); "
            f"cleared the leftovers {', '.join(removed)}"
        )
    check_logic(checkpoint, query, logic, remedy)


def batch_offsets(checkpoint, batch_id: int) -> list[dict | None]:
    """The end offset of each source for a planned batch (Spark's offsets log entry:
    a version line, the batch metadata, then one JSON per source, `-` for none)."""
    lines = (Path(checkpoint) / "offsets" / str(batch_id)).read_text(encoding="utf-8").splitlines()
    return [None if line.strip() == "-" else json.loads(line) for line in lines[2:]]


def _source_log_entries(folder: Path, log_offset: int) -> list[dict]:
    """Entries of a file source's log for one of its batches; the log is compacted every
    few batches into `<n>.compact`, which holds every entry up to n."""
    candidates = [folder / str(log_offset)]
    candidates += sorted(
        (p for p in folder.glob("*.compact") if int(p.name.split(".")[0]) >= log_offset),
        key=lambda p: int(p.name.split(".")[0]),
    )
    for path in candidates:
        if path.is_file():
            entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
            return [e for e in entries if e.get("batchId", log_offset) == log_offset]
    return []


def files_of_batch(checkpoint, batch_id: int) -> list[str]:
    """Paths of the files a planned batch read, over every file source of the query."""
    paths = []
    for index, offset in enumerate(batch_offsets(checkpoint, batch_id)):
        if isinstance(offset, dict) and "logOffset" in offset:
            folder = Path(checkpoint) / "sources" / str(index)
            paths += [entry["path"] for entry in _source_log_entries(folder, offset["logOffset"])]
    return paths


def kafka_end_offsets(checkpoint, batch_id: int) -> dict[str, dict[int, int]]:
    """topic -> partition -> the offset after the last message a planned batch read."""
    ends: dict[str, dict[int, int]] = {}
    for offset in batch_offsets(checkpoint, batch_id):
        if isinstance(offset, dict) and "logOffset" not in offset:
            for topic, partitions in offset.items():
                if isinstance(partitions, dict):
                    ends.setdefault(topic, {}).update({int(p): int(o) for p, o in partitions.items()})
    return ends


class CheckpointAppId:
    """The query id Spark keeps in a checkpoint, read once the query has started: Delta's
    idempotent writes are keyed by it, so a new checkpoint never collides with the batch
    ids of an old one (a replayed batch of the same checkpoint lands once)."""

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.value: str | None = None

    def __call__(self) -> str:
        if self.value is None:
            self.value = query_id(self.checkpoint)
            if self.value is None:
                raise RuntimeError(f"no query id in {self.checkpoint}/metadata: the query has not started")
        return self.value


# Marks a write in its commit's commitInfo (Delta's `userMetadata` writer option): which
# checkpoint (app id) and which of its batches wrote it.
WRITER_MARK = "lab-writer"


def writer_mark(app_id: str, batch_id: int) -> str:
    return json.dumps({WRITER_MARK: app_id, "batch": int(batch_id)}, sort_keys=True)


def written_by(actions: list[dict], app_id: str) -> int | None:
    """The batch id of `app_id` a commit's actions say wrote it: the lab's mark in its
    commitInfo, or Delta's own `txn` action (tables written with txnAppId/txnVersion by an
    earlier release of the lab); None when neither names this app id."""
    for action in actions:
        info = action.get("commitInfo")
        if info and info.get("userMetadata"):
            try:
                mark = json.loads(info["userMetadata"])
            except ValueError:
                mark = None
            if isinstance(mark, dict) and mark.get(WRITER_MARK) == app_id:
                return int(mark["batch"])
        txn = action.get("txn")
        if txn and txn.get("appId") == app_id:
            return int(txn["version"])
    return None


def append_once(frame, table: str, app_id: str, batch_id: int) -> None:
    """Append `frame` to the Delta table unless this (app id, batch id) already was.

    Why not Delta's own idempotent writes (txnAppId/txnVersion): Delta 4.4 looks the app id
    up in the table's reconstructed state, which costs Spark jobs at every append (4 jobs
    and about 1.3 s here against 1 job and 0.3 s for a plain append), on the path of every
    live result. The check here reads the table's newest commit file instead, and is exact
    because of how the lab writes: each table has one writer (one streaming query), which
    appends in batch order and never starts batch n+1 before batch n is committed in its
    checkpoint. So after a crash the only batch that can run again is the last one, and if
    its append landed it is the table's newest commit, marked with (app id, batch id) in
    its commitInfo (a compaction after it changes no rows and is looked past:
    shared/delta_log.newest_write). A newer batch of the same app id there also counts as written (a
    checkpoint is never behind its own table). A new checkpoint has a new app id (the
    query id Spark keeps in it), so its batch ids starting again at 0 never match an old
    checkpoint's marks."""
    from shared.delta_log import newest_write

    _version, actions = newest_write(table)
    written = written_by(actions, app_id)
    if written is not None and written >= batch_id:
        return
    frame.write.format("delta").mode("append").option("userMetadata", writer_mark(app_id, batch_id)).save(table)
