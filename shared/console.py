"""The lab's own lines on stderr, one format for every build and helper."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    say(f"warning: {message}")
