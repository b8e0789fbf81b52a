"""`lab verify`: run the three builds and the oracle on one input and compare exports.

Equal results are byte-identical export files; anything else is a mismatch, described
by how many rows differ. A query a build does not produce is shown as such, never as
passing.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from shared.export import QUERY_NAMES, export_path, read_accounting, results_dir
from shared.quality import QUALITY_SUMMARY_FILE

SPARK_BUILDS = ("kappa", "lambda", "dstream")
IDENTICAL, DIFFERS, MISSING, NOT_APPLICABLE, NOT_IMPLEMENTED, EXPLAINED = (
    "identical", "DIFFERS", "MISSING", "not applicable", "not implemented", "explained by the watermark",
)
MODEL_DIR = "watermark_model"
FAILING = {DIFFERS, MISSING}


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
                problems.append(f"{build}: raw {counts['raw_lines']} != valid {counts['valid_lines']}"
                                f" + quarantined {counts['quarantined_lines']}")
            elif reference and build != "oracle" and (counts["raw_lines"], counts["valid_lines"], counts["quarantine"]) != (
                    reference["raw_lines"], reference["valid_lines"], reference["quarantine"]):
                problems.append(f"{build}: accounting differs from the oracle's")
        return problems

    @property
    def quality_problems(self) -> list[str]:
        problems = []
        for build, summary in self.quality.items():
            if summary is None:
                problems.append(f"{build}: no data-quality record")
            elif not summary["success"]:
                problems.append(f"{build}: {summary['failed_batches']} of {summary['batches']} batches failed "
                                f"the quality suite: {'; '.join(summary['failures'])}")
        return problems

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.accounting_problems and not self.quality_problems

    def to_json(self) -> dict:
        return {"comparisons": [asdict(c) for c in self.comparisons], "accounting": self.accounting,
                "quality": self.quality, "seconds": self.seconds, "ok": self.ok,
                "accounting_problems": self.accounting_problems, "quality_problems": self.quality_problems}


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


def explain_by_watermark(workdir, input_dir, build: str, settings) -> Comparison | None:
    """When an event-time build's window_revenue differs from the truth, check it against
    the watermark model: identical to the model means the difference is exactly the
    (line, window) pairs that were later than the watermark, listed in dropped_pairs.csv."""
    from experiments.watermark_model import model
    from shared.export import QUERIES, render

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
    (folder / "window_revenue.csv").write_text(expected, encoding="utf-8", newline="")
    _write_dropped(folder / "dropped_pairs.csv", result.dropped)
    if export_path(workdir, build, "window_revenue").read_text(encoding="utf-8") != expected:
        return None
    lines = len({(d["file"], d["line"]) for d in result.dropped})
    spark_count = late.get("rows_dropped_by_watermark", {}).get("window_revenue")
    return Comparison("window_revenue", build, EXPLAINED,
                      f"differs from the truth by exactly {len(result.dropped)} (line, window) pairs of {lines} "
                      f"late lines, listed in results/{MODEL_DIR}/dropped_pairs.csv; Spark counted {spark_count} "
                      "rows dropped by the watermark (after partial aggregation)")


def _write_dropped(path: Path, dropped: list[dict]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "order_ts", "window_start", "window_end", "line"])
        for d in dropped:
            writer.writerow([d["file"], d["order_ts"], d["window_start"], d["window_end"], d["line"]])


def compare_all(workdir, statuses: dict[str, dict[str, str]], builds=SPARK_BUILDS, input_dir=None,
                settings=None) -> VerifyOutcome:
    from shared.settings import WorkloadSettings

    comparisons = []
    for query in QUERY_NAMES:
        for build in builds:
            comparison = compare_export(workdir, build, query, statuses.get(build, {}).get(query))
            if comparison.status == DIFFERS and query == "window_revenue":
                comparison = explain_by_watermark(workdir, input_dir, build, settings or WorkloadSettings()) or comparison
            comparisons.append(comparison)
    accounting = {build: read_accounting(workdir, build) for build in ("oracle", *builds)}
    return VerifyOutcome(comparisons, accounting, {build: read_quality(workdir, build) for build in builds})


def read_quality(workdir, build: str) -> dict | None:
    path = results_dir(workdir, build) / QUALITY_SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_builds(spark, input_dir, workdir, builds=SPARK_BUILDS, settings=None,
               stage: Callable[[str], None] = lambda message: None,
               options: dict[str, dict] | None = None) -> tuple[dict, dict]:
    """Run the oracle and each build fresh; returns (statuses, seconds) per build.
    `options` holds extra settings per build (e.g. kappa's Kafka source)."""
    from experiments.oracle import run_oracle
    from shared.settings import WorkloadSettings

    settings = settings or WorkloadSettings()
    statuses, seconds = {}, {}
    stage("oracle: computing the reference answers")
    started = time.perf_counter()
    run_oracle(input_dir, workdir, settings)
    seconds["oracle"] = time.perf_counter() - started
    for build in builds:
        stage(f"{build}: processing the input")
        started = time.perf_counter()
        statuses[build] = run_build(spark, build, input_dir, workdir, settings, **(options or {}).get(build, {}))
        seconds[build] = time.perf_counter() - started
    return statuses, seconds


def run_build(spark, build: str, input_dir, workdir, settings, fresh: bool = True, **options) -> dict[str, str]:
    if build == "kappa":
        from kappa.app import KappaConfig, run
        return run(spark, KappaConfig(str(input_dir), str(workdir), settings=settings, **options), fresh=fresh)
    if build == "lambda":
        from lambda_arch.app import LambdaConfig, run
        return run(spark, LambdaConfig(str(input_dir), str(workdir), settings=settings, **options), fresh=fresh)
    if build == "dstream":
        from legacy_dstream.app import DStreamConfig, run
        return run(spark, DStreamConfig(str(input_dir), str(workdir), settings=settings, **options), fresh=fresh)
    raise ValueError(f"unknown build {build!r}: choose kappa, lambda or dstream")


def verify(spark, input_dir, workdir, builds=SPARK_BUILDS, settings=None, stage=lambda m: None) -> VerifyOutcome:
    statuses, seconds = run_builds(spark, input_dir, workdir, builds, settings, stage)
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
            row.append("" if c is None else (f"{c.status} ({c.detail})" if c.status in (DIFFERS, EXPLAINED) else c.status))
        rows.append(row)
    accounting_row = ["line accounting"]
    for build in builds:
        counts = outcome.accounting.get(build)
        if counts is None:
            accounting_row.append("MISSING")
        elif any(p.startswith(build + ":") for p in outcome.accounting_problems):
            accounting_row.append(f"DIFFERS (raw {counts['raw_lines']}, valid {counts['valid_lines']})")
        else:
            accounting_row.append(f"identical (raw {counts['raw_lines']} = valid {counts['valid_lines']}"
                                  f" + quarantined {counts['quarantined_lines']})")
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
