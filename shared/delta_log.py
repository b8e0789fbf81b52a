"""A Delta table's transaction log read as files (Delta's protocol: one `_delta_log/<version>.json`
per commit, created atomically): its newest version and that commit's actions, no Spark job."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def latest_version(table: str | os.PathLike) -> int | None:
    """A Delta table's newest version: its highest commit file (`_delta_log/<20 digits>.json`,
    created atomically by each commit; Delta's protocol). No Spark job, unlike `history()`."""
    log = Path(table) / "_delta_log"
    if not log.is_dir():
        return None
    versions = [int(m.group(1)) for m in map(_COMMIT_FILE.match, (p.name for p in log.iterdir())) if m]
    return max(versions, default=None)


def latest_commit(table: str | os.PathLike) -> tuple[int | None, list[dict]]:
    """A Delta table's newest version and the actions of its commit file (each line of
    `_delta_log/<version>.json` is one action: commitInfo, txn, add, ...); (None, []) for a
    table with no commit. A plain file read: no Spark job."""
    version = latest_version(table)
    if version is None:
        return None, []
    return version, read_commit(table, version)


# Delta's name for a compaction commit (OPTIMIZE, and auto compaction): it rewrites files with
# dataChange false, so the table's rows and every writer's commits are as they were.
COMPACTION = "OPTIMIZE"
# How far back `newest_write` looks past compactions (the lab compacts a table at most once
# between two of its writer's commits)
LOOK_BACK = 20


def read_commit(table: str | os.PathLike, version: int) -> list[dict]:
    """The actions of one commit file."""
    path = Path(table) / "_delta_log" / f"{version:020d}.json"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_compaction(actions: list[dict]) -> bool:
    return any((action.get("commitInfo") or {}).get("operation") == COMPACTION for action in actions)


def newest_write(table: str | os.PathLike) -> tuple[int | None, list[dict]]:
    """The newest commit of a Delta table that is not a compaction, and its actions ((None, [])
    when there is none within LOOK_BACK versions): what its writer committed last."""
    latest = latest_version(table)
    if latest is None:
        return None, []
    for version in range(latest, max(-1, latest - LOOK_BACK), -1):
        actions = read_commit(table, version)
        if not is_compaction(actions):
            return version, actions
    return None, []


def next_version(table: str | os.PathLike) -> int:
    """The version the next commit to a Delta table creates (0 for a table not created yet)."""
    latest = latest_version(table)
    return 0 if latest is None else latest + 1


def active_files(table: str | os.PathLike) -> int | None:
    """How many data files a Delta table's newest snapshot holds (what a reader lists and
    opens), from its log alone: the last checkpoint's `add` actions (a classic parquet
    checkpoint, one file or several parts, named by `_delta_log/_last_checkpoint`), then the
    `add` and `remove` actions of every commit after it. None when the table has no commit."""
    log = Path(table) / "_delta_log"
    latest = latest_version(table)
    if latest is None:
        return None
    files: set[str] = set()
    first = 0
    pointer = log / "_last_checkpoint"
    if pointer.exists():
        import pyarrow.parquet as pq

        checkpoint = json.loads(pointer.read_text(encoding="utf-8"))
        version, parts = int(checkpoint["version"]), checkpoint.get("parts")
        names = (
            [f"{version:020d}.checkpoint.parquet"]
            if not parts
            else [
                f"{version:020d}.checkpoint.{part:010d}.{int(parts):010d}.parquet" for part in range(1, int(parts) + 1)
            ]
        )
        if all((log / name).exists() for name in names):
            for name in names:
                for add in pq.read_table(log / name, columns=["add"]).column("add").to_pylist():
                    if add:
                        files.add(add["path"])
            first = version + 1
    for version in range(first, latest + 1):
        for action in read_commit(table, version):
            if "add" in action:
                files.add(action["add"]["path"])
            elif "remove" in action:
                files.discard(action["remove"]["path"])
    return len(files)
