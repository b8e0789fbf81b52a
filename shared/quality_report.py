"""The quality gate's report: one run of the suite over a batch, as text and as a file.

Both evaluations of the suite (Great Expectations over pandas, shared/quality_checks.py,
and Spark, shared/quality_spark.py) produce this report, so they read alike. Cleaning
already rejects malformed lines, so a failure here means a bug or a broken input contract,
not ordinary dirty data: `require()` turns it into an error, and `record()` keeps the evidence.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.atomic import write_text_atomic


@dataclass
class QualityReport:
    suite: str
    checked_rows: int
    success: bool
    results: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        ran = [r for r in self.results if r["skipped"] is None]
        failed = [r for r in ran if not r["success"]]
        skipped = [r for r in self.results if r["skipped"] is not None]
        text = f"{self.suite}: {len(ran) - len(failed)}/{len(ran)} expectations passed on {self.checked_rows:,} rows"
        if skipped:
            text += f" ({len(skipped)} skipped: " + ", ".join(f"{r['check']}: {r['skipped']}" for r in skipped) + ")"
        if failed:
            text += "; failed: " + "; ".join(_failure_text(r) for r in failed)
        return text


class QualityError(RuntimeError):
    """A batch of order lines failed the quality gate."""


def require(report: QualityReport) -> None:
    if not report.success:
        raise QualityError(report.summary())


def record(report: QualityReport, directory, name: str) -> Path:
    """Write DIRECTORY/<name>.json atomically: readers never see a half-written report."""
    return write_text_atomic(Path(directory) / f"{name}.json", json.dumps(report.to_json(), indent=2) + "\n")


def _failure_text(result: dict) -> str:
    if result["error"]:
        return f"{result['check']} (error: {result['error']})"
    count = result["unexpected_count"]
    first = result["unexpected_examples"][0] if result["unexpected_examples"] else "no example"
    return f"{result['check']} ({count:,} row{'' if count == 1 else 's'}, e.g. {first})"
