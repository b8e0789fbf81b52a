"""Raw lines as docs/data-rules.md counts them: `\\n`, `\\r\\n` and `\\r` end a line, a
final line ending starts no extra line, and a byte-order mark at the very start of a file
is not part of its lines (Spark's text reader, Hadoop's LineRecordReader, does the same).

Lines are split as bytes, so any file has lines, whatever its encoding: a line that is not
UTF-8 is a bad line like any other (quarantined `not_utf8`), never a bad file. As text, a
line is decoded the way Hadoop's `Text.toString` decodes it for textFileStream: each byte
sequence that is not UTF-8 becomes U+FFFD, the replacement character, which is what the
parsers test for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

BYTE_ORDER_MARK = b"\xef\xbb\xbf"
REPLACEMENT_CHARACTER = "\ufffd"
# A line longer than this many characters cannot be an order line (they are under 200): it
# is quarantined `too_long` before any parser splits it into fields (docs/data-rules.md).
MAX_LINE_CHARS = 4096
_LINE_END = re.compile(rb"\r\n|\r|\n")
_READ_BYTES = 1 << 20


def iter_raw_line_bytes(path: str | os.PathLike) -> Iterator[bytes]:
    """Every physical line of one file as its bytes, without its line ending.

    Read in blocks, so a file of any size or a line of several megabytes is no problem; a
    `\\r` at the end of a block waits for the next block (it may be half of a `\\r\\n`).
    """
    with open(path, "rb") as handle:
        pending = handle.read(_READ_BYTES)
        if pending.startswith(BYTE_ORDER_MARK):
            pending = pending[len(BYTE_ORDER_MARK) :]
        while True:
            block = handle.read(_READ_BYTES)
            if block and pending.endswith(b"\r"):
                pending, block = pending[:-1], b"\r" + block
            start = 0
            for end in _LINE_END.finditer(pending):
                yield pending[start : end.start()]
                start = end.end()
            pending = pending[start:] + block
            if not block:
                break
        if pending:
            yield pending  # a last line without a line ending


def decoded(line: bytes) -> str:
    """One line as text, every byte sequence that is not UTF-8 as U+FFFD (as Hadoop's
    `Text.toString`, and so textFileStream, gives it)."""
    return line.decode("utf-8", "replace")


def escaped(line: bytes) -> str:
    """A line that is not UTF-8, kept for inspection: ASCII as itself, every other byte as
    `\\xNN` (shared/cleaning.py writes the same in Spark)."""
    return line.decode("ascii", "backslashreplace")


def iter_raw_lines(path: str | os.PathLike) -> Iterator[str]:
    """Every physical line of one file as text (`decoded`), without its line ending."""
    return map(decoded, iter_raw_line_bytes(path))


def count_raw_lines(path: str | os.PathLike) -> int:
    return sum(1 for _ in iter_raw_line_bytes(path))


def encoding_reason(text: str) -> str | None:
    """The reasons a line gets before it is split into fields (docs/data-rules.md, in order):
    `not_utf8` for a line holding U+FFFD (bytes that were not UTF-8, or text that went
    through such a decoding already), `too_long` past MAX_LINE_CHARS; else None."""
    if REPLACEMENT_CHARACTER in text:
        return "not_utf8"
    if len(text) > MAX_LINE_CHARS:
        return "too_long"
    return None
