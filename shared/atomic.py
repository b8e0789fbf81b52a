"""Atomic file writes: the one way the lab writes a file that someone may be reading.

A file is written under a hidden temporary name in its own folder (`.<name>.tmp`: Spark's
file source and `textFileStream` ignore names that start with a dot), then renamed over
the target with `os.replace`, which is atomic within one file system. A reader (a watcher
of the landing directory, a user opening an export, a restarted run reading a pointer)
sees the old file or the whole new one, never half of one. If writing fails, the temporary
file is removed and the target is left as it was. One writer per target at a time: the
temporary name is fixed, so a crashed run's leftover is simply overwritten by the next.

`fsync=True` also flushes the file to disk before the rename (and the folder after it),
for the small pointer files that recovery depends on; exports do without it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def temporary_path(path: str | os.PathLike) -> Path:
    """Where `path` is written before the rename: `.<name>.tmp` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_text(
    path: str | os.PathLike,
    *,
    encoding: str = "utf-8",
    newline: str | None = "",
    buffering: int = -1,
    fsync: bool = False,
) -> Iterator[TextIO]:
    """Stream text into `path`; it appears (whole) when the block ends without an error.

    The parent folder is created if missing. `newline=""` writes line ends exactly as given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with open(temporary, "w", encoding=encoding, newline=newline, buffering=buffering) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_folder(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = False) -> Path:
    """Replace `path` with `text` atomically (line ends written exactly as given)."""
    with atomic_text(path, encoding=encoding, fsync=fsync) as handle:
        handle.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Replace `path` with `data` atomically."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def copy_file_atomic(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy `source` to `target` byte for byte; `target` appears whole or not at all.

    Unlike `atomic_text`, the target's folder must exist (a landing directory is made, and
    checked, by its owner).
    """
    target = Path(target)
    temporary = temporary_path(target)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders: the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
