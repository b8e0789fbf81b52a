"""The Spark batch baseline: every query of the catalogue from one scan of the input.

What the streaming builds are measured against (`lab bench`, F1-F3): the same cleaning
(shared/cleaning.py, the rules of docs/data-rules.md) and the same query functions
(shared/queries.py) as the builds, but as one batch job: the sales files are read once
with Spark's text source (the reader the builds' file sources use: `\\n`, `\\r\\n` and `\\r`
end a line, a byte-order mark at the start of a file is skipped), each line's outcome and
typed columns are cached (not its text: the leanest job for the same export), and every
query is a batch aggregation over that cache. `window_revenue` runs without a watermark
(a batch DataFrame has none: the event-time truth), `category_revenue` joins the
catalogue, `fulfilment` the shipments. The results export goes to
WORKDIR/results/spark_batch/, with the line accounting beside it, so it can be compared
byte for byte with the oracle's.

Run as its own process (its JVM start is part of what `lab bench` times):
    python -m experiments.baselines.spark_batch --input DIR --workdir W [--master URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from shared import cleaning
from shared import queries as Q
from shared.catalogue import QUERY_NAMES
from shared.finish import write_results
from shared.inputs import inspect_input, read_catalogue, read_shipments
from shared.results import export_rows
from shared.settings import WorkloadSettings

BUILD = "spark_batch"
# Step timings (query, part, ms) as JSON, for `lab bench`'s profile.csv; not in the export folder.
PROFILE_FILE = "spark_batch/profile.json"


def run_spark_batch(
    spark, input_dir: str | os.PathLike, workdir: str | os.PathLike, settings: WorkloadSettings | None = None
) -> dict[str, str]:
    """Compute every applicable query and write the export; returns query -> status."""
    settings = (settings or WorkloadSettings()).validated()
    layout = inspect_input(input_dir)
    # The sales files by name, exactly the ones inspect_input lists (no `.`/`_` names).
    steps: list[dict] = []
    clock = time.perf_counter()

    def step(query: str, part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps.append({"query": query, "part": part, "ms": round((now - clock) * 1000)})
        clock = now

    raw = spark.read.text([str(path) for path in layout.sales_files])
    # cached: each line's outcome and its typed columns, not its raw text or the parsed fields
    # (only the accounting's counts of the quarantine are exported: its text is not needed)
    classified = cleaning.classify_lines(raw).select("reason", *cleaning.ORDER_LINE_COLUMNS).persist()
    try:
        # the one scan: reading, classifying and caching every line (with the line accounting)
        outcomes = {row["outcome"]: int(row["lines"]) for row in cleaning.line_accounting(classified).collect()}
        step("(scan)", "read_classify_cache")
        lines = cleaning.valid_order_lines(classified)
        catalogue, shipments = read_catalogue(spark, layout), read_shipments(spark, layout)
        skipped = layout.not_applicable()
        rows = {}
        for query in QUERY_NAMES:
            if query not in skipped:
                # window_revenue without a watermark: a batch DataFrame has none, the event-time truth
                result = Q.result(query, lines, settings, catalogue, shipments, watermark=False)
                rows[query] = export_rows(result, query)
                step(query, "compute_collect")
    finally:
        classified.unpersist()
    valid = outcomes.pop("valid", 0)
    status = write_results(
        workdir,
        BUILD,
        layout,
        QUERY_NAMES,
        raw_lines=valid + sum(outcomes.values()),
        valid_lines=valid,
        quarantine=outcomes,
        result_rows=rows.get,
    )
    step("(export)", "write")
    profile = Path(workdir) / PROFILE_FILE
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text(json.dumps(steps, indent=1), encoding="utf-8")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.baselines.spark_batch",
        description="The Spark batch baseline of `lab bench`: every query from one scan of the input; "
        "writes WORKDIR/results/spark_batch/.",
    )
    parser.add_argument(
        "--input", required=True, help="input directory (sales *.csv, optional catalogue/ and shipments/)"
    )
    parser.add_argument("--workdir", required=True, help="results go to WORKDIR/results/spark_batch/")
    parser.add_argument("--master", help="Spark master URL (default: LAB_SPARK_MASTER or local[2])")
    args = parser.parse_args(argv)
    from shared.spark import create_spark_session, lives_long, stop_spark_session

    layout = inspect_input(args.input)  # fail before the JVM starts
    spark = create_spark_session(
        "lab-spark-batch", master=args.master, long_lived=lives_long(layout.sales_bytes)
    )  # the same compilers as the builds' drains of the same input
    try:
        status = run_spark_batch(spark, args.input, args.workdir, WorkloadSettings.from_env())
    finally:
        stop_spark_session(spark)
    for query, state in status.items():
        print(f"{query:18} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
