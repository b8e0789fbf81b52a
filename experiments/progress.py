"""A small progress display for long work: timestamped stages and a percentage line."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self._last_fraction_at = 0.0

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def stage(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self._elapsed()}] {message}", file=self.stream, flush=True)

    def fraction(self, done: int, total: int, what: str = "") -> None:
        """At most a few updates a second, overwriting one line on a terminal."""
        now = time.monotonic()
        interval = 0.5 if self.stream.isatty() else 10.0  # logs get a line every 10 s
        if self.quiet or (now - self._last_fraction_at < interval and done < total):
            return
        self._last_fraction_at = now
        percent = 100.0 * done / total if total else 100.0
        end = "\r" if self.stream.isatty() and done < total else "\n"
        print(f"[{self._elapsed()}] {what} {done:,}/{total:,} ({percent:5.1f}%)", end=end, file=self.stream, flush=True)
