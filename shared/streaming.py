"""Waiting on streaming queries, shared by the builds."""
from __future__ import annotations

import time
from typing import Callable


def plain_failure(name: str, message: str) -> Exception:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return RuntimeError(f"streaming query {name} failed: {first[:2000]}")


def await_all(queries: list, poll_seconds: float = 0.5,
              explain: Callable[[str, str], Exception] = plain_failure) -> None:
    """Wait for every query to finish (availableNow); on the first failure stop the
    others and raise what `explain(query name, Spark's message)` makes of it."""
    pending = list(queries)
    while pending:
        for query in list(pending):
            if not query.isActive:
                pending.remove(query)
                if query.exception() is not None:
                    for other in pending:
                        other.stop()
                    raise explain(query.name, str(query.exception()))
        time.sleep(poll_seconds)
