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
        self._last_fraction: tuple[int, int] | None = None

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def stage(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self._elapsed()}] {message}", file=self.stream, flush=True)

    def fraction(self, done: int, total: int, what: str = "") -> None:
        """At most a few updates a second, overwriting one line on a terminal; the end of
        the work at once, and only once (a follow run sits at 'all done' between arrivals)."""
        now = time.monotonic()
        interval = 0.5 if self.stream.isatty() else 10.0  # logs get a line every 10 s
        finished_now = done >= total and (done, total) != self._last_fraction
        if self.quiet or (now - self._last_fraction_at < interval and not finished_now):
            return
        self._last_fraction_at, self._last_fraction = now, (done, total)
        percent = 100.0 * done / total if total else 100.0
        end = "\r" if self.stream.isatty() and done < total else "\n"
        print(f"[{self._elapsed()}] {what} {done:,}/{total:,} ({percent:5.1f}%)", end=end, file=self.stream, flush=True)


class TimeLeft:
    """Time left of a plan of tasks with estimated seconds: the estimates of the tasks not
    done yet, scaled by how the finished ones compared with their estimates."""

    def __init__(self, estimates: dict[str, float]):
        self.estimates = dict(estimates)  # task -> estimated seconds
        self.done: dict[str, float] = {}  # task -> actual seconds

    def finish(self, task: str, seconds: float) -> None:
        self.done[task] = seconds

    def seconds_left(self) -> float:
        estimated_done = sum(self.estimates[t] for t in self.done if t in self.estimates)
        scale = (sum(self.done.values()) / estimated_done) if estimated_done else 1.0
        return scale * sum(s for t, s in self.estimates.items() if t not in self.done)

    def text(self) -> str:
        seconds = int(round(self.seconds_left()))
        return f"about {seconds // 60} min {seconds % 60:02d} s left" if seconds else "finishing"
