"""Named versions of a build's results and the serving pointer that says which one readers
use (reprocessing: compute a new version beside the serving one, then cut over).

A build keeps each version in a folder of its own under `root` (named by the version) and
one pointer file (JSON, replaced atomically with a rename) naming the serving version.
Cutting over is one rename, so a reader sees the old version or the new one, never a mix;
the old version's folder stays readable until it is dropped, and the serving version can
never be dropped. Kappa (kappa/versions.py) and Lambda (lambda/versions.py) share this.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from shared.atomic import write_text_atomic

DEFAULT_VERSION = "v1"
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_version(version: str) -> str:
    if not VERSION_NAME.fullmatch(version):
        raise ValueError(f"bad version name {version!r}: letters, digits, '.', '_' and '-' only (e.g. v2)")
    return version


@dataclass(frozen=True)
class VersionStore:
    """The versions under `root` (a folder each) and the `pointer` naming the serving one.
    `how_to_cut_over` ends the message refusing to drop the serving version."""

    root: Path
    pointer: Path
    how_to_cut_over: str = "cut over to another version before dropping it"

    def pointer_record(self) -> dict | None:
        return json.loads(self.pointer.read_text()) if self.pointer.exists() else None

    def serving(self) -> str | None:
        record = self.pointer_record()
        return record.get("version") if record else None

    def cut_over(self, version: str, note: str = "", **fields) -> dict:
        """Point readers at `version`, atomically (a rename); `fields` go into the pointer too."""
        check_version(version)
        record = {
            "version": version,
            **fields,
            "since_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "previous": self.serving(),
            "note": note,
        }
        write_text_atomic(self.pointer, json.dumps(record, indent=2), fsync=True)
        return record

    def names(self) -> list[str]:
        root = self.root
        return (
            sorted(p.name for p in root.iterdir() if p.is_dir() and VERSION_NAME.fullmatch(p.name))
            if root.exists()
            else []
        )

    def drop(self, version: str) -> Path:
        """Delete a version that does not serve; its folder."""
        check_version(version)
        if version == self.serving():
            raise ValueError(f"{version} is the serving version: {self.how_to_cut_over}")
        folder = self.root / version
        if not folder.exists():
            raise ValueError(f"no version {version} under {self.root} (have: {', '.join(self.names()) or 'none'})")
        shutil.rmtree(folder)
        return folder
