"""Each query of one build's results export against the oracle's: identical, differs (how
many rows, and the first differing rows), explained by the watermark (Kappa's late lines,
with the count), not applicable or not implemented (with the reason).

Built on `lab verify`'s comparison (experiments/harness/verify.py `compare_export` and the
watermark model), for a build whose export lives in a workdir of its own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from experiments.harness.verify import (
    DIFFERS,
    EXPLAINED,
    FAILING,
    IDENTICAL,
    MISSING,
    NOT_APPLICABLE,
    NOT_IMPLEMENTED,
    compare_export,
    explanation,
    model_watermark,
)
from shared.catalogue import QUERY_NAMES
from shared.export import export_path, results_dir

FIRST_DIFFERENCES = 3  # rows shown of each side


@dataclass(frozen=True)
class Verdict:
    query: str
    status: str  # IDENTICAL, DIFFERS, EXPLAINED, MISSING, NOT_APPLICABLE, NOT_IMPLEMENTED
    differing_rows: int | None  # rows in one export and not the other (0 when identical, None when n/a)
    detail: str

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def text(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


def first_differences(oracle: Path, candidate: Path, limit: int = FIRST_DIFFERENCES) -> tuple[int, str]:
    """(rows in one file and not the other, the first `limit` of each side as text)."""
    expected = oracle.read_text(encoding="utf-8").splitlines()[1:]
    actual = candidate.read_text(encoding="utf-8").splitlines()[1:]
    missing = [row for row in expected if row not in set(actual)]
    extra = [row for row in actual if row not in set(expected)]
    shown = [f"oracle only: {row}" for row in missing[:limit]] + [f"build only: {row}" for row in extra[:limit]]
    return len(missing) + len(extra), "; ".join(shown)


def order_line_counts(path: Path) -> dict[tuple, int]:
    """key -> order_lines of one export that has that column (the key: every column that is
    not a value)."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        keys = [c for c in reader.fieldnames or [] if c not in ("order_lines", "revenue", "quantity")]
        return {tuple(row[k] for k in keys): int(row["order_lines"]) for row in reader}


def lost_and_duplicated(oracle: Mapping[tuple, int], build: Mapping[tuple, int]) -> tuple[int, int]:
    """(order lines the build lacks, order lines it has too many of), summed per key: a key
    with fewer lines than the oracle's lost the difference, one with more duplicated it."""
    lost = sum(max(0, count - build.get(key, 0)) for key, count in oracle.items())
    duplicated = sum(max(0, count - oracle.get(key, 0)) for key, count in build.items())
    return lost, duplicated


def compare_build(
    workdir: Path,
    build: str,
    oracle_results: Path,
    statuses: Mapping[str, str],
    input_dir: Path | None = None,
    settings=None,
) -> list[Verdict]:
    """One Verdict per query of the catalogue. `oracle_results` is copied into the workdir
    (results/oracle) first; `input_dir` lets a differing window_revenue be checked against
    the watermark model over the file batches the build read."""
    shutil.copytree(oracle_results, results_dir(workdir, "oracle"), dirs_exist_ok=True)
    verdicts = []
    for query in QUERY_NAMES:
        comparison = compare_export(workdir, build, query, statuses.get(query))
        if comparison.status == DIFFERS and query == "window_revenue" and input_dir is not None:
            modelled = model_watermark(workdir, input_dir, build, settings)
            if modelled is not None:
                comparison = explanation(workdir, build, modelled) or comparison
        if comparison.status == IDENTICAL:
            verdicts.append(Verdict(query, IDENTICAL, 0, comparison.detail))
        elif comparison.status in (DIFFERS, EXPLAINED):
            count, shown = first_differences(export_path(workdir, "oracle", query), export_path(workdir, build, query))
            verdicts.append(
                Verdict(
                    query,
                    comparison.status,
                    count,
                    comparison.detail + (f"; first differences: {shown}" if shown else ""),
                )
            )
        elif comparison.status == MISSING:
            verdicts.append(Verdict(query, MISSING, None, comparison.detail))
        else:  # NOT_APPLICABLE, NOT_IMPLEMENTED
            verdicts.append(Verdict(query, comparison.status, None, comparison.detail))
    return verdicts


def watermark_drops(workdir: Path, build: str) -> dict[str, int]:
    """Rows Spark dropped behind the watermark, per stateful query, from the build's
    `results/<build>/_late.json` (Kappa writes it; empty for a build that keeps none)."""
    path = results_dir(workdir, build) / "_late.json"
    if not path.exists():
        return {}
    late = json.loads(path.read_text(encoding="utf-8"))
    return {
        query: int(count) for query, count in (late.get("rows_dropped_by_watermark") or {}).items() if count is not None
    }


__all__ = [
    "Verdict",
    "compare_build",
    "first_differences",
    "watermark_drops",
    "order_line_counts",
    "lost_and_duplicated",
    "IDENTICAL",
    "DIFFERS",
    "EXPLAINED",
    "MISSING",
    "NOT_APPLICABLE",
    "NOT_IMPLEMENTED",
]
