"""`lab experiments`' late-data step: an input with a share of lines beyond the watermark
(`lab generate --late-fraction`), drained by each build one file a micro-batch so the
watermark moves between batches as it does in a live run; what each build counted, dropped
or corrected later, and what that did to `window_revenue`.

Per build, in a fresh workdir, each command in its own process; the builds run at the same
time (their figures are counts, which do not depend on the machine's load; so the step
records no time or cost of theirs but their exit codes, and takes the time of the slowest):
- `lab run BUILD --max-files-per-trigger 1`, its exports
  against the oracle's event-time truth (equivalence.py: `explained by the watermark` when a
  differing window_revenue is exactly what the watermark model drops, with the count);
- Lambda only: then `lab lambda batch --recompute` (the batch layer over the whole master
  dataset: its correction of what the speed layer dropped), whose export (what serving
  answers after it) is compared with the truth again (`..._after_batch` rows).

Rows (step `late`): `late_lines` (the generator's count of lines beyond the watermark, build
`input`); per build `counted_lines` (order lines in its daily_revenue: additive queries have
no watermark), `window_lines_missing` / `window_lines_extra` ((line, window) pairs the build's
window_revenue lacks or has beyond the truth: per window, the order_lines difference),
`window_rows_differing` (rows of window_revenue that differ from the truth), Kappa's
`watermark_dropped_rows` (Spark's numRowsDroppedByWatermark from `_late.json`), and every
query's `equivalence`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from experiments.harness.builds import BUILDS
from experiments.harness.drain_step import cost_metrics, equivalence_metrics
from experiments.harness.equivalence import (
    compare_build,
    first_differences,
    lost_and_duplicated,
    order_line_counts,
    watermark_drops,
)
from experiments.harness.measure import measure_command
from experiments.harness.run_folder import Metric, RunFolder
from experiments.harness.systems import lab_command, run_statuses, system_command
from experiments.inputs.manifest import LINES_BY_KIND_KEY, SUMMARY_KEY
from experiments.inputs.prepared import prepare_input
from shared.export import export_path
from shared.inputs import MANIFEST_FILE

STEP = "late"
WINDOWS = "window_revenue"


def window_metrics(build: str, oracle_results: Path, produced: Path, suffix: str, common: dict) -> list[Metric]:
    """Missing and extra (line, window) pairs and differing rows of one window_revenue."""
    truth = oracle_results / f"{WINDOWS}.csv"
    missing, extra = lost_and_duplicated(order_line_counts(truth), order_line_counts(produced))
    differing, shown = first_differences(truth, produced)
    return [
        Metric(
            STEP,
            build,
            f"window_lines_missing{suffix}",
            missing,
            "(line, window) pairs",
            query=WINDOWS,
            detail="per window: the truth's order_lines minus the build's, where positive",
            **common,
        ),
        Metric(
            STEP,
            build,
            f"window_lines_extra{suffix}",
            extra,
            "(line, window) pairs",
            query=WINDOWS,
            detail="per window: the build's order_lines minus the truth's, where positive",
            **common,
        ),
        Metric(
            STEP,
            build,
            f"window_rows_differing{suffix}",
            differing,
            "rows",
            query=WINDOWS,
            detail=f"first differences: {shown}" if shown else "identical to the event-time truth",
            **common,
        ),
    ]


def late_one(
    run: RunFolder,
    build: str,
    input_dir: Path,
    input_lines: int,
    oracle_results: Path,
    work: Path,
    master: str | None,
    settings,
    repeat: int,
    timeout_s: float,
) -> list[Metric]:
    workdir = work / f"{build}-r{repeat}"
    log = run.log_path(f"late-{build}-r{repeat}")
    common: dict[str, Any] = dict(repeat=repeat, input_lines=input_lines)
    command = system_command(build, input_dir, workdir, master) + ["--max-files-per-trigger", "1"]
    try:
        measured = measure_command(command, log, timeout=timeout_s)
    except TimeoutError as error:
        return [Metric(STEP, build, "problem", None, "", detail=str(error), **common)]
    # its exit code only: a time or cost measured beside the other builds' runs is no figure of its own
    rows = [m for m in cost_metrics(STEP, build, measured, repeat, input_lines, log) if m.metric == "exit_code"]
    if measured.exit_code != 0:
        return rows
    verdicts = compare_build(workdir, build, oracle_results, run_statuses(log), input_dir, settings)
    rows += equivalence_metrics(STEP, build, verdicts, repeat, input_lines)
    daily = export_path(workdir, build, "daily_revenue")
    if daily.exists():
        rows.append(
            Metric(
                STEP,
                build,
                "counted_lines",
                sum(order_line_counts(daily).values()),
                "order lines",
                query="daily_revenue",
                detail="order lines in its daily_revenue (no watermark)",
                **common,
            )
        )
    produced = export_path(workdir, build, WINDOWS)
    windows = next((v for v in verdicts if v.query == WINDOWS), None)
    if produced.exists() and windows is not None and windows.differing_rows is not None:
        rows += window_metrics(build, oracle_results, produced, "", common)
    elif windows is not None:
        rows.append(
            Metric(STEP, build, "window_rows_differing", None, "rows", query=WINDOWS, detail=windows.text(), **common)
        )
    for query, dropped in sorted(watermark_drops(workdir, build).items()):
        rows.append(
            Metric(
                STEP,
                build,
                "watermark_dropped_rows",
                dropped,
                "rows",
                query=query,
                detail="Spark's numRowsDroppedByWatermark, summed over micro-batches (_late.json)",
                **common,
            )
        )
    correction = BUILDS[build].correct_late
    if correction:
        rows += _late_correction(build, correction, input_dir, workdir, oracle_results, master, log, timeout_s, common)
    return rows


def _late_correction(
    build: str,
    arguments,
    input_dir: Path,
    workdir: Path,
    oracle_results: Path,
    master: str | None,
    log: Path,
    timeout_s: float,
    common: dict,
) -> list[Metric]:
    """The build's recompute of its serving version over the whole input (Lambda: the batch
    run over the whole master dataset), then its window_revenue (the export it writes)."""
    batch_log = log.with_name(log.stem + "-batch.log")
    served = export_path(workdir, build, WINDOWS)
    served.unlink(missing_ok=True)  # compared above; the one compared below is the recompute's
    try:
        batch = measure_command(lab_command(arguments, input_dir, workdir, master), batch_log, timeout=timeout_s)
    except TimeoutError as error:
        return [Metric(STEP, build, "problem", None, "", detail=str(error), **common)]
    if batch.exit_code != 0 or not served.exists():
        return [
            Metric(
                STEP,
                build,
                "problem",
                None,
                "",
                detail=f"the batch run exited {batch.exit_code}"
                + ("" if batch.exit_code else f" without writing {WINDOWS}")
                + f", see {batch_log}",
                **common,
            )
        ]
    return window_metrics(build, oracle_results, served, "_after_batch", common)


def run_late(
    run: RunFolder,
    builds: Sequence[str],
    profile,
    data_root: Path,
    work: Path,
    master: str | None,
    settings,
    stage: Callable[[str], None],
    on_done: Callable[[str, float], None] = lambda build, s: None,
    timeout_s: float = 3600.0,
) -> None:
    from experiments.progress import Progress
    from experiments.reference.oracle import run_oracle
    from shared.export import results_dir

    input_dir = prepare_input(
        data_root,
        profile.late_rows,
        profile.seed,
        Progress(quiet=True),
        prefix="late",
        files=profile.late_files,
        late_fraction=profile.late_fraction,
    )
    oracle = run_oracle(input_dir, work / "oracle", settings)
    oracle_results = results_dir(work / "oracle", "oracle")
    manifest = json.loads((input_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    late = manifest[SUMMARY_KEY][LINES_BY_KIND_KEY].get("late")
    run.update_environment(late_input=str(input_dir))
    run.append(
        [
            Metric(
                STEP,
                "input",
                "late_lines",
                late,
                "lines",
                input_lines=oracle.raw_lines,
                detail=f"lines beyond the {settings.watermark_seconds / 3600:g} h watermark "
                f"(generator, --late-fraction {profile.late_fraction:g})",
            ),
            Metric(
                STEP,
                "input",
                "valid_lines",
                oracle.valid_lines,
                "lines",
                input_lines=oracle.raw_lines,
                detail="the oracle's valid lines (the event-time truth counts every one)",
            ),
        ]
    )
    for repeat in range(1, profile.other_repeats + 1):
        started = time.monotonic()
        stage(
            f"step late | {', '.join(builds)} at once | {oracle.raw_lines:,} lines, {late} late, one file a micro-batch"
        )
        with ThreadPoolExecutor(max_workers=max(1, len(builds))) as pool:
            running = {
                build: pool.submit(
                    late_one,
                    run,
                    build,
                    input_dir,
                    oracle.raw_lines,
                    oracle_results,
                    work,
                    master,
                    settings,
                    repeat,
                    timeout_s,
                )
                for build in builds
            }
            done = {build: future.result() for build, future in running.items()}
        for build in builds:
            rows = done[build]
            run.append(rows)
            figures = {m.metric: m.value for m in rows}
            stage(
                f"{build}: window_revenue lacks {figures.get('window_lines_missing')} (line, window) pairs"
                + (
                    f", {figures.get('window_lines_missing_after_batch')} after the batch run"
                    if BUILDS[build].correct_late
                    else ""
                )
            )
            on_done(build, (time.monotonic() - started) / len(builds))  # together they took the step's time
