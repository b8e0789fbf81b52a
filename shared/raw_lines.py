"""Raw lines as docs/data-rules.md counts them: `\\n`, `\\r\\n` and `\\r` end a line, a
final line ending starts no extra line, and a byte-order mark at the very start of a file
is not part of its lines (Spark's text reader, Hadoop's LineRecordReader, does the same)."""
from __future__ import annotations

import os
from typing import Iterator


class NotUtf8Error(ValueError):
    """A sales file that is not UTF-8 text."""


def iter_raw_lines(path: str | os.PathLike) -> Iterator[str]:
    """Every physical line of one file, without its line ending.

    newline="" makes Python end lines at exactly \\n, \\r\\n and \\r (not at the other
    characters str.splitlines knows). utf-8-sig skips a byte-order mark at the very start
    of the file only, as Hadoop's reader does: a file holding nothing but the mark has no
    lines, and a mark further down stays in its line (the parsers deal with it).
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        line_number = 0
        try:
            for line_number, line in enumerate(handle, start=1):
                yield _without_line_ending(line)
        except UnicodeDecodeError as error:
            raise NotUtf8Error(f"{path}: not UTF-8 text after line {line_number}: {error}") from None


def count_raw_lines(path: str | os.PathLike) -> int:
    return sum(1 for _ in iter_raw_lines(path))


def _without_line_ending(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith(("\n", "\r")):
        return line[:-1]
    return line
