"""Raw lines as docs/data-rules.md counts them: `\\n`, `\\r\\n` and `\\r` end a line, and a
final line ending starts no extra line (Spark's text reader splits the same way)."""
from __future__ import annotations

import os
from typing import Iterator


class NotUtf8Error(ValueError):
    """A sales file that is not UTF-8 text."""


def iter_raw_lines(path: str | os.PathLike) -> Iterator[str]:
    """Every physical line of one file, without its line ending.

    newline="" makes Python end lines at exactly \\n, \\r\\n and \\r (not at the other
    characters str.splitlines knows).
    """
    with open(path, encoding="utf-8", newline="") as handle:
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
