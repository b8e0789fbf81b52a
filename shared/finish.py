"""What every build does at the end, written once: replace the old export with the line
accounting, the quality summary and one export per query, and say what each query got."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from shared.export import clear_results, results_dir, write_accounting, write_export
from shared.inputs import InputLayout
from shared.quality import write_summary
from shared.settings import QUARANTINE_REASONS

WRITTEN = "written"


def write_results(
    workdir: str | os.PathLike,
    build: str,
    layout: InputLayout,
    queries: Iterable[str],
    *,
    raw_lines: int,
    valid_lines: int,
    quarantine: Mapping[str, int],
    quality_dir=None,
    result_rows: Callable[[str], Iterable[Mapping] | None],
    unsupported: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Query -> status ("written", "not applicable: ...", or why it has no result).
    `result_rows(query)` gives the rows of a query's export, or None when the build has no
    result for it; `unsupported` names the queries the build cannot express, with why.
    `quality_dir`: where the quality gate recorded its batches (None: the system has no gate,
    as the baselines of `lab bench`)."""
    unknown = set(quarantine) - set(QUARANTINE_REASONS)
    if unknown:
        raise RuntimeError(f"{build}: unexpected line outcomes {sorted(unknown)}")
    clear_results(workdir, build)  # a file from an earlier run cannot pass for this one's
    write_accounting(workdir, build, raw_lines, valid_lines, quarantine)
    if quality_dir is not None:
        write_summary(quality_dir, results_dir(workdir, build))
    skipped, unsupported = layout.not_applicable(), dict(unsupported or {})
    status = {}
    for query in queries:
        if query in skipped:
            status[query] = "not applicable: " + skipped[query]
        elif query in unsupported:
            status[query] = unsupported[query]
        else:
            rows = result_rows(query)
            if rows is None:
                status[query] = "no result"
            else:
                write_export(workdir, build, query, rows)
                status[query] = WRITTEN
    return status
