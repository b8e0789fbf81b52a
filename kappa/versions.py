"""Versioned result tables and the serving pointer (reprocessing by replay).

Each version of the application writes under WORKDIR/kappa/<version>/. Readers use the
version named in WORKDIR/kappa/serving.json, which is replaced atomically at cut-over;
older versions stay readable until dropped.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

from shared.atomic import write_text_atomic

BUILD = "kappa"
DEFAULT_VERSION = "v1"
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise ValueError(f"bad version name {version!r}: letters, digits, '.', '_' and '-' only (e.g. v2)")
    return version


def pointer_path(workdir) -> Path:
    return Path(workdir) / BUILD / "serving.json"


def serving_version(workdir) -> str | None:
    path = pointer_path(workdir)
    return json.loads(path.read_text())["version"] if path.exists() else None


def cut_over(workdir, version: str, note: str = "") -> dict:
    """Point readers at `version`, atomically (a rename)."""
    check_version(version)
    record = {"version": version, "since_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "previous": serving_version(workdir), "note": note}
    write_text_atomic(pointer_path(workdir), json.dumps(record, indent=2), fsync=True)
    return record


def versions(workdir) -> list[str]:
    root = Path(workdir) / BUILD
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)) if root.exists() else []


def drop_version(workdir, version: str) -> Path:
    check_version(version)
    if version == serving_version(workdir):
        raise ValueError(f"{version} is the serving version: cut over to another version before dropping it")
    root = Path(workdir) / BUILD / version
    if not root.exists():
        raise ValueError(f"no version {version} under {root.parent} (have: {', '.join(versions(workdir)) or 'none'})")
    shutil.rmtree(root)
    return root
