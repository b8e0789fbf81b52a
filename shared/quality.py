"""The data-quality gate as the builds use it: check, record, warn; and a summary per build.

Run wherever data enters a build (a micro-batch, a master-dataset append) on the output of
cleaning. The gate's parts: the expectations read from the input folder
(shared/quality_expectations.py), the suite and Great Expectations running it over pandas
(shared/quality_checks.py), the same suite counted by Spark (shared/quality_spark.py), and
the report they produce (shared/quality_report.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from shared.atomic import write_text_atomic
from shared.quality_checks import MAX_EXAMPLES, validate_order_lines
from shared.quality_expectations import QualityExpectations
from shared.quality_report import QualityReport, record

QUALITY_SUMMARY_FILE = "_quality.json"
_log = logging.getLogger("lab.quality")


def check_batch(lines: pd.DataFrame, expectations: QualityExpectations, directory, name: str) -> QualityReport | None:
    """Validate one non-empty batch of valid order lines and record the result.

    A failing batch is recorded and warned about, and counted by `summarize`, so a run
    shows it in its results (`lab verify` fails on it); processing goes on, because the
    master dataset and the logs must still account for every line.
    """
    if lines.empty:
        return None
    return record_report(validate_order_lines(lines, expectations), directory, name)


def record_report(report: QualityReport, directory, name: str) -> QualityReport | None:
    """A non-empty batch's report is written, and a failing one is warned about (processing
    goes on: every line must still be accounted)."""
    if report.checked_rows == 0:
        return None
    record(report, directory, name)
    if not report.success:
        _log.warning("data quality failed for %s: %s", name, report.summary())
        print(f"data quality FAILED for {name}: {report.summary()}", flush=True)
    return report


def summarize(directory) -> dict:
    """Every recorded batch report of one build, added up."""
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(directory).glob("*.json"))]
    failed = [r for r in reports if not r["success"]]
    return {
        "batches": len(reports),
        "rows": sum(r["checked_rows"] for r in reports),
        "failed_batches": len(failed),
        "failures": [QualityReport(**r).summary() for r in failed][:MAX_EXAMPLES],
        "success": not failed,
    }


def write_summary(directory, results_directory) -> dict:
    summary = summarize(directory)
    write_text_atomic(Path(results_directory) / QUALITY_SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary
