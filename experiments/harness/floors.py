"""The harness pass-through: emit, land, read, record, and nothing else.

A Structured Streaming query reads the landing directory exactly as the Kappa build does
(the text file source on its sales files, `_metadata.file_name`), counts each micro-batch's
lines per file and appends one commit-log row (`passthrough`) with the highest input `seq`
the batch read: no parsing, no state, no Delta commit, no export. Measured the same way as
the builds (`lab experiments`' latency step: the replayer's open-loop schedule, the commit
log, the same percentiles), its latency is what the harness and Spark's file source cost
before any computation, so every build's latency can be read against it (Nexmark's q0 plays
this part; the Kappa build's own q0, `lab kappa passthrough`, reads Kafka or the rate
source and records no commit log, so it cannot be measured from a landing directory).

With `--delta` it is the second floor, `passthrough_delta`: the same query, whose micro-batch
also appends its raw lines to a Delta table the way the builds append theirs (one idempotent
append, shared/checkpoints.append_once) before its commit-log row. The two floors apart are
what one Delta commit per micro-batch costs; a build over `passthrough_delta` is its own work.

    python -m experiments.harness.floors --input LANDING --workdir W [--interval "1 second"] [--delta]

It runs until SIGTERM or SIGINT, then stops its query between micro-batches and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from shared.commit_log import CommitLog, commit_log_path

BUILD = "passthrough"
QUERY = "passthrough"
DELTA_BUILD = "passthrough_delta"


def run(landing: str, workdir: str, interval: str, master: str | None, should_stop, delta: bool = False) -> int:
    from pyspark.sql import functions as F

    from shared import checkpoints
    from shared.inputs import inspect_input
    from shared.progress_log import record_progress
    from shared.sequence import SequenceMap, batch_max_seq
    from shared.spark import create_spark_session, stop_spark_session
    from shared.streaming import stop_between_batches

    build = DELTA_BUILD if delta else BUILD
    layout = inspect_input(landing, require_sales=False)
    log = CommitLog(commit_log_path(workdir, build))
    sequence = SequenceMap(landing)
    highest: dict[str, int | None] = {"seq": None}
    checkpoint = f"{workdir}/{build}/checkpoint"
    app_id = checkpoints.CheckpointAppId(checkpoint)

    def record(batch, batch_id: int) -> None:
        if delta:
            batch = batch.persist()
        try:
            counts = batch.groupBy("file").count().collect()
            if not counts:
                return
            if delta:
                checkpoints.append_once(batch, f"{workdir}/{build}/table", app_id(), batch_id)
        finally:
            batch.unpersist()
        highest["seq"] = batch_max_seq(sequence, [row["file"] for row in counts], highest["seq"])
        # no seq while every file read so far was gone before it was numbered: nothing to log yet
        if highest["seq"] is not None:
            log.append(QUERY, highest["seq"], sum(row["count"] for row in counts))

    spark = create_spark_session("lab-passthrough", master=master, long_lived=True)  # follows, as the builds do
    record_progress(spark, build, Path(workdir) / build / "progress" / f"{build}.jsonl")  # the anatomy's
    try:
        lines = (
            spark.readStream.format("text")
            .load(layout.sales_glob)
            .select(*(["value"] if delta else []), F.col("_metadata.file_name").alias("file"))
        )
        query = (
            lines.writeStream.foreachBatch(record)
            .trigger(processingTime=interval)
            .option("checkpointLocation", checkpoint)
            .queryName(build)
            .start()
        )
        print(f"{build}: following {landing} every {interval}", file=sys.stderr, flush=True)
        while query.isActive and not should_stop():
            time.sleep(0.2)
        if query.exception() is not None:
            raise RuntimeError(f"the pass-through query failed: {query.exception()}")
        stop_between_batches([query])
    finally:
        stop_spark_session(spark)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.harness.floors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", required=True, help="the landing directory to follow")
    parser.add_argument(
        "--workdir",
        required=True,
        help="its commit log goes to WORKDIR/commits/passthrough.csv (passthrough_delta.csv)",
    )
    parser.add_argument("--interval", default="1 second", help="processing-time trigger (default 1 second)")
    parser.add_argument("--master", default=None, help="Spark master URL (default: LAB_SPARK_MASTER)")
    parser.add_argument(
        "--delta",
        action="store_true",
        help=f"{DELTA_BUILD}: append each micro-batch's lines to a Delta table before its commit row",
    )
    args = parser.parse_args(argv)
    stop = {"asked": False}
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.update(asked=True))
    return run(args.input, args.workdir, args.interval, args.master, lambda: stop["asked"], delta=args.delta)


if __name__ == "__main__":
    sys.exit(main())
