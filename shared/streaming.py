"""Waiting on and stopping streaming queries, and keeping a micro-batch, shared by the builds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# How often a streaming query that reads a Delta table written by another query of the same
# build (Kappa's stateful queries over `clean_lines`, Lambda's speed layer over the master)
# looks for its next commit, whatever the build's own trigger: a poll lists the table's
# `_delta_log` (no Spark job), and a result downstream should not wait a whole trigger
# behind the commit upstream.
DELTA_READER_POLL = "250 milliseconds"


def kept_batch(batch: DataFrame) -> DataFrame:
    """A foreachBatch micro-batch kept where its first job computes it (memory, else disk),
    behind a plan of one leaf. `persist()` kept it too, but every DataFrame built on it then
    carried the whole parse plan, analysed again at each select and union: a live batch's
    fan-out spent 0.5-0.7 s of the driver there (docs/measurements.md). The blocks go when
    the frame is no longer referenced (Spark's context cleaner); a lost executor fails the
    batch, which then runs again from the checkpoint."""
    return batch.localCheckpoint(eager=False)


def plain_failure(name: str, message: str) -> Exception:
    from shared.spark import spark_errors_log

    lines = message.strip().splitlines() or ["unknown error"]
    first = lines[0]
    if "Traceback (most recent call last)" in first:
        # an error raised in a foreachBatch function: its Python exception is the news
        first = next((line for line in lines[1:] if line and not line[0].isspace()), first)
    if DISK_FULL in message and DISK_FULL not in first:
        first = f"{DISK_FULL} ({first})"  # deep in Spark's report; the CLI says which file system
    if KAFKA_TIMEOUT in message:
        from shared.kafka import BROKER_GONE

        return RuntimeError(f"streaming query {name} stopped: {BROKER_GONE} ({first[:300]})")
    return RuntimeError(f"streaming query {name} failed: {first[:2000]} (Spark's report: {spark_errors_log()})")


DISK_FULL = "No space left on device"  # java.io.IOException's and Python's OSError's words (ENOSPC)
# What Spark's Kafka source fails with once the broker has not answered through its retries
KAFKA_TIMEOUT = "org.apache.kafka.common.errors.TimeoutException"


def stop_between_batches(queries: list, timeout_seconds: float = 120.0, poll_seconds: float = 0.1) -> None:
    """Stop each query when no micro-batch of it is running (Structured Streaming has no
    graceful stop: stopping mid-batch interrupts its sink, which then logs the interrupt
    as an error; the batch would be replayed, but the user sees a stack trace)."""
    deadline = time.monotonic() + timeout_seconds
    for query in queries:
        while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
            time.sleep(poll_seconds)
        query.stop()


def await_all(
    queries: list,
    poll_seconds: float = 0.5,
    explain: Callable[[str, str], Exception] = plain_failure,
    until: Callable[[], bool] | None = None,
) -> None:
    """Wait until every query has finished (availableNow) or `until()` says stop (then stop
    them between micro-batches). On the first failure stop the others the same way and
    raise what `explain(query name, Spark's message)` makes of it."""
    pending = list(queries)
    while pending:
        for query in list(pending):
            if not query.isActive:
                pending.remove(query)
                if query.exception() is not None:
                    stop_between_batches(pending)
                    raise explain(query.name, str(query.exception()))
        if until is not None and until():
            stop_between_batches(pending)
            return
        time.sleep(poll_seconds)
