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
    path = Path(table) / "_delta_log" / f"{version:020d}.json"
    return version, [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def next_version(table: str | os.PathLike) -> int:
    """The version the next commit to a Delta table creates (0 for a table not created yet)."""
    latest = latest_version(table)
    return 0 if latest is None else latest + 1
