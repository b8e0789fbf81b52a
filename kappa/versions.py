"""Versioned result tables and the serving pointer (reprocessing by replay).

Each version of the application writes under WORKDIR/kappa/<version>/. Readers use the
version named in WORKDIR/kappa/serving.json, which is replaced atomically at cut-over;
older versions stay readable until dropped (shared/versions.py, which Lambda's versions
use too).
"""

from __future__ import annotations

from pathlib import Path

from shared.versions import DEFAULT_VERSION, VersionStore, check_version

BUILD = "kappa"
__all__ = [
    "BUILD",
    "DEFAULT_VERSION",
    "check_version",
    "pointer_path",
    "serving_version",
    "cut_over",
    "versions",
    "drop_version",
]


def _store(workdir) -> VersionStore:
    return VersionStore(Path(workdir) / BUILD, pointer_path(workdir))


def pointer_path(workdir) -> Path:
    return Path(workdir) / BUILD / "serving.json"


def serving_version(workdir) -> str | None:
    return _store(workdir).serving()


def cut_over(workdir, version: str, note: str = "") -> dict:
    """Point readers at `version`, atomically (a rename)."""
    return _store(workdir).cut_over(version, note)


def versions(workdir) -> list[str]:
    return _store(workdir).names()


def drop_version(workdir, version: str) -> Path:
    return _store(workdir).drop(version)
