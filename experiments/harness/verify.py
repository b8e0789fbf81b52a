"""`lab verify`: run the three builds and the oracle on one input and compare exports.

Equal results are byte-identical export files; anything else is a mismatch, described
by how many rows differ. A query a build does not produce is shown as such, never as
passing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.harness.builds import SPARK_BUILDS
from shared.atomic import atomic_text, write_text_atomic
from shared.catalogue import QUERY_NAMES
from shared.export import export_path, read_accounting, results_dir
from shared.quality import QUALITY_SUMMARY_FILE

if TYPE_CHECKING:  # imported lazily at run time: the model reads with the oracle (pandas)
    from experiments.reference.watermark_model import WatermarkModelResult

IDENTICAL, DIFFERS, MISSING, NOT_APPLICABLE, NOT_IMPLEMENTED, EXPLAINED = (
    "identical",
    "DIFFERS",
    "MISSING",
    "not applicable",
    "not implemented",
    "explained by the watermark",
)
MODEL_DIR = "watermark_model"
FAILING = {DIFFERS, MISSING}
# Above this share of valid lines dropped as late, verify says plainly that the input is out
# of event-time order: a few late lines are an input's quirk, this many are its file order.
OUT_OF_ORDER_WARNING_SHARE = 0.01


@dataclass(frozen=True)
class Comparison:
    query: str
    build: str
    status: str
    detail: str = ""


@dataclass
class VerifyOutcome:
    comparisons: list[Comparison]
    accounting: dict[str, dict | None]
    quality: dict[str, dict | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # true of the input, not failures of a build

    @property
    def mismatches(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.status in FAILING]

    @property
    def accounting_problems(self) -> list[str]:
        reference = self.accounting.get("oracle")
        problems = []
        for build, counts in self.accounting.items():
            if counts is None:
                problems.append(f"{build}: no line accounting")
            elif not counts["balanced"]:
                problems.append(
                    f"{build}: raw {counts['raw_lines']} != valid {counts['valid_lines']}"
                    f" + quarantined {counts['quarantined_lines']}"
                )
            elif (
                reference
                and build != "oracle"
                and (counts["raw_lines"], counts["valid_lines"], counts["quarantine"])
                != (reference["raw_lines"], reference["valid_lines"], reference["quarantine"])
            ):
                problems.append(f"{build}: accounting differs from the oracle's")
        return problems

    @property
    def quality_problems(self) -> list[str]:
        problems = []
        for build, summary in self.quality.items():
            if summary is None:
                problems.append(f"{build}: no data-quality record")
            elif not summary["success"]:
                problems.append(
                    f"{build}: {summary['failed_batches']} of {summary['batches']} batches failed "
                    f"the quality suite: {'; '.join(summary['failures'])}"
                )
        return problems

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.accounting_problems and not self.quality_problems

    def to_json(self) -> dict:
        return {
            "comparisons": [asdict(c) for c in self.comparisons],
            "accounting": self.accounting,
            "quality": self.quality,
            "seconds": self.seconds,
            "ok": self.ok,
            "accounting_problems": self.accounting_problems,
            "quality_problems": self.quality_problems,
            "warnings": self.warnings,
        }


def _rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[1:]


def compare_export(workdir, build: str, query: str, build_status: str | None) -> Comparison:
    reference, candidate = export_path(workdir, "oracle", query), export_path(workdir, build, query)
    if not reference.exists():
        return Comparison(query, build, NOT_APPLICABLE, "the oracle found no input for it")
    if not candidate.exists():
        if build_status and build_status.startswith("not implemented"):
            return Comparison(query, build, NOT_IMPLEMENTED, build_status)
        return Comparison(query, build, MISSING, build_status or "no export written")
    if candidate.read_bytes() == reference.read_bytes():
        return Comparison(query, build, IDENTICAL, f"{len(_rows(reference))} rows")
    expected, actual = set(_rows(reference)), set(_rows(candidate))
    detail = f"{len(expected - actual)} oracle rows not matched, {len(actual - expected)} rows not in the oracle"
    if expected == actual:
        detail = "same rows, different header or order"
    return Comparison(query, build, DIFFERS, detail)


@dataclass(frozen=True)
class ModelledBuild:
    """The watermark model run over the file batches one build read."""

    result: WatermarkModelResult
    late: dict  # the build's _late.json: its source, batching and Spark's own drop counts
    expected_csv: str  # window_revenue as the build should export it


def model_watermark(workdir, input_dir, build: str, settings) -> ModelledBuild | None:
    """Run the watermark model over the file batches the build read and write its
    window_revenue and dropped_pairs.csv under results/watermark_model/; None when the build
    keeps no event-time record (_late.json) or read a source the model does not replay."""
    from experiments.reference.watermark_model import model
    from shared.catalogue import QUERIES
    from shared.export import render

    late_path = results_dir(workdir, build) / "_late.json"
    if not late_path.exists() or input_dir is None:
        return None
    late = json.loads(late_path.read_text())
    if late.get("source") != "files" or not late.get("max_files_per_trigger"):
        return None  # the model replays file batches; other sources are not modelled
    result = model(input_dir, settings, late["max_files_per_trigger"])
    expected = render(QUERIES["window_revenue"], result.rows)
    folder = Path(workdir) / "results" / MODEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "window_revenue.csv", expected)
    _write_dropped(folder / "dropped_pairs.csv", result.dropped)
    return ModelledBuild(result, late, expected)


def explain_by_watermark(workdir, input_dir, build: str, settings) -> Comparison | None:
    """When an event-time build's window_revenue differs from the truth, check it against
    the watermark model: identical to the model means the difference is exactly the
    (line, window) pairs that were later than the watermark, listed in dropped_pairs.csv."""
    modelled = model_watermark(workdir, input_dir, build, settings)
    return None if modelled is None else explanation(workdir, build, modelled)


def explanation(workdir, build: str, modelled: ModelledBuild) -> Comparison | None:
    """EXPLAINED when the build's window_revenue is the model's, else None."""
    if export_path(workdir, build, "window_revenue").read_text(encoding="utf-8") != modelled.expected_csv:
        return None
    result = modelled.result
    spark_count = modelled.late.get("rows_dropped_by_watermark", {}).get("window_revenue")
    return Comparison(
        "window_revenue",
        build,
        EXPLAINED,
        f"differs from the truth by exactly {len(result.dropped)} (line, window) pairs of "
        f"{result.dropped_lines} late lines, listed in results/{MODEL_DIR}/dropped_pairs.csv; "
        f"Spark counted {spark_count} rows dropped by the watermark (after partial aggregation)",
    )


def out_of_order_warning(result: WatermarkModelResult, build: str, watermark_seconds: int) -> str | None:
    """A plain warning when more than OUT_OF_ORDER_WARNING_SHARE of the valid lines came
    behind the watermark: then the cause is the input's file order, not a few late lines."""
    dropped, valid = result.dropped_lines, result.valid_lines
    if valid == 0 or dropped <= OUT_OF_ORDER_WARNING_SHARE * valid:
        return None
    return (
        f"input files are not in event-time order: {dropped:,} of {valid:,} valid lines "
        f"({dropped / valid:.1%}) arrived behind the {_duration_text(watermark_seconds)} watermark and were "
        f"dropped by {build}'s window_revenue, from some or all of their windows (so says the watermark model "
        "over the build's file batches, taken by modification time, then name, as a file source takes them; "
        f"results/{MODEL_DIR}/dropped_pairs.csv lists each pair). Replay the "
        "input in event-time order with `lab replay --order event-time --to landing --landing DIR` and run "
        "the builds on DIR, or raise LAB_WATERMARK_SECONDS above how far back the files go (the build then "
        "keeps that much more state)"
    )


def _duration_text(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _write_dropped(path: Path, dropped: list[dict]) -> None:
    import csv

    with atomic_text(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "order_ts", "window_start", "window_end", "line"])
        for d in dropped:
            writer.writerow([d["file"], d["order_ts"], d["window_start"], d["window_end"], d["line"]])


def compare_all(
    workdir, statuses: dict[str, dict[str, str]], builds=SPARK_BUILDS, input_dir=None, settings=None
) -> VerifyOutcome:
    from shared.settings import WorkloadSettings

    settings = settings or WorkloadSettings()
    comparisons, warnings = [], []
    for query in QUERY_NAMES:
        for build in builds:
            comparison = compare_export(workdir, build, query, statuses.get(build, {}).get(query))
            if comparison.status == DIFFERS and query == "window_revenue":
                modelled = model_watermark(workdir, input_dir, build, settings)
                if modelled is not None:
                    comparison = explanation(workdir, build, modelled) or comparison
                    warning = out_of_order_warning(modelled.result, build, settings.watermark_seconds)
                    warnings += [warning] if warning else []
            comparisons.append(comparison)
    accounting = {build: read_accounting(workdir, build) for build in ("oracle", *builds)}
    return VerifyOutcome(
        comparisons, accounting, {build: read_quality(workdir, build) for build in builds}, warnings=warnings
    )


def read_quality(workdir, build: str) -> dict | None:
    path = results_dir(workdir, build) / QUALITY_SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_builds(
    spark,
    input_dir,
    workdir,
    builds=SPARK_BUILDS,
    settings=None,
    stage: Callable[[str], None] = lambda message: None,
    options: dict[str, dict] | None = None,
) -> tuple[dict, dict]:
    """Run the oracle and each build fresh, through the registry; returns (statuses,
    seconds) per build. `options` holds RunRequest fields per build (e.g. kappa's Kafka
    source)."""
    from experiments.harness.builds import BUILDS, RunRequest
    from shared.settings import WorkloadSettings

    settings = settings or WorkloadSettings()
    statuses, seconds = {}, {}
    for build in ("oracle", *builds):
        stage(f"{build}: processing the input")
        request = RunRequest(str(input_dir), str(workdir), settings, fresh=True, **(options or {}).get(build, {}))
        BUILDS[build].check(request)
        started = time.perf_counter()
        statuses[build] = BUILDS[build].run(spark, request)
        seconds[build] = time.perf_counter() - started
    statuses.pop("oracle")
    return statuses, seconds


def verify(
    spark,
    input_dir,
    workdir,
    builds=SPARK_BUILDS,
    settings=None,
    stage=lambda m: None,
    options: dict[str, dict] | None = None,
) -> VerifyOutcome:
    statuses, seconds = run_builds(spark, input_dir, workdir, builds, settings, stage, options)
    outcome = compare_all(workdir, statuses, builds, input_dir, settings)
    outcome.seconds = seconds
    return outcome


def equivalence_table(outcome: VerifyOutcome, builds=SPARK_BUILDS) -> list[list[str]]:
    """Rows of the per-query equivalence table: query, then one cell per build."""
    cells = {(c.query, c.build): c for c in outcome.comparisons}
    rows = []
    for query in QUERY_NAMES:
        row = [query]
        for build in builds:
            c = cells.get((query, build))
            row.append(
                "" if c is None else (f"{c.status} ({c.detail})" if c.status in (DIFFERS, EXPLAINED) else c.status)
            )
        rows.append(row)
    accounting_row = ["line accounting"]
    for build in builds:
        counts = outcome.accounting.get(build)
        if counts is None:
            accounting_row.append("MISSING")
        elif any(p.startswith(build + ":") for p in outcome.accounting_problems):
            accounting_row.append(f"DIFFERS (raw {counts['raw_lines']}, valid {counts['valid_lines']})")
        else:
            accounting_row.append(
                f"identical (raw {counts['raw_lines']} = valid {counts['valid_lines']}"
                f" + quarantined {counts['quarantined_lines']})"
            )
    rows.append(accounting_row)
    quality_row = ["data quality"]
    for build in builds:
        summary = outcome.quality.get(build)
        if summary is None:
            quality_row.append("MISSING")
        else:
            verdict = "passed" if summary["success"] else f"FAILED {summary['failed_batches']}"
            quality_row.append(f"{verdict} ({summary['batches']} batches, {summary['rows']} rows)")
    rows.append(quality_row)
    return rows


def format_text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
