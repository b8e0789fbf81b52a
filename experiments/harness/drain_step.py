"""`lab experiments`' drain step: every system over the whole drain input, each in its own
process (own JVM), repeated; every export checked against the oracle; the measurements
appended to the run folder's metrics.csv.

Systems: the Spark batch baseline and DuckDB (experiments/baselines/), then `lab run kappa`,
`lab run lambda` and `lab run dstream`, each with a fresh workdir. The process tree is
measured by MeasuredCommand (wall s of the whole process, CPU s and peak RSS of the tree).
Ratios to the baselines are not computed here: the report computes them from these rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.harness.builds import BUILDS
from experiments.harness.equivalence import compare_build, watermark_drops
from experiments.harness.measure import measure_command
from experiments.harness.run_folder import Metric, RunFolder
from experiments.harness.systems import PROFILERS, run_statuses, system_command
from shared.export import read_accounting, results_dir

STEP = "drain"


def oracle_metrics(oracle, input_lines: int, step: str = STEP) -> list[Metric]:
    """The reference's line accounting (run once per input, in the harness: it has no Spark)."""
    rows = [
        Metric(step, "oracle", "raw_lines", oracle.raw_lines, "lines", input_lines=input_lines),
        Metric(step, "oracle", "valid_lines", oracle.valid_lines, "lines", input_lines=input_lines),
    ]
    for reason, lines in sorted((oracle.quarantine or {}).items()):
        rows.append(Metric(step, "oracle", "quarantine", lines, "lines", input_lines=input_lines, detail=reason))
    return rows


def equivalence_metrics(
    step: str, build: str, verdicts, repeat: int, input_lines: int, rate_lps: float | str = ""
) -> list[Metric]:
    return [
        Metric(
            step,
            build,
            "equivalence",
            v.differing_rows,
            "rows differing",
            query=v.query,
            repeat=repeat,
            input_lines=input_lines,
            rate_lps=rate_lps,
            detail=v.text(),
        )
        for v in verdicts
    ]


def accounting_metrics(step: str, build: str, workdir: Path, repeat: int, input_lines: int) -> list[Metric]:
    counts = read_accounting(workdir, build)
    if counts is None:
        return [
            Metric(
                step,
                build,
                "balanced",
                None,
                "1 = raw lines = valid + quarantined",
                repeat=repeat,
                input_lines=input_lines,
                detail="no line accounting written",
            )
        ]
    return [
        Metric(step, build, name, counts[name], "lines", repeat=repeat, input_lines=input_lines)
        for name in ("raw_lines", "valid_lines", "quarantined_lines")
    ] + [
        Metric(
            step,
            build,
            "balanced",
            1 if counts["balanced"] else 0,
            "1 = raw lines = valid + quarantined",
            repeat=repeat,
            input_lines=input_lines,
        )
    ]


def cost_metrics(
    step: str,
    build: str,
    measurement,
    repeat: int,
    input_lines: int,
    log: Path,
    rate_lps: float | str = "",
    scope: str = "whole process, JVM start included",
) -> list[Metric]:
    common: dict[str, Any] = dict(repeat=repeat, input_lines=input_lines, rate_lps=rate_lps)
    if measurement is None:
        return [Metric(step, build, "exit_code", None, "code", detail=f"did not finish, see {log}", **common)]
    return [
        Metric(step, build, "wall_s", measurement.wall_s, "s", detail=scope, **common),
        Metric(step, build, "cpu_s", measurement.cpu_s, "s", detail="user + system over the process tree", **common),
        Metric(
            step,
            build,
            "peak_rss_mb",
            measurement.peak_rss_mb,
            "MiB",
            detail="the process tree's highest memory at one sample, each page once (harness/measure.py)",
            **common,
        ),
        Metric(
            step,
            build,
            "exit_code",
            measurement.exit_code,
            "code",
            detail="" if measurement.exit_code == 0 else f"see {log}",
            **common,
        ),
    ]


def run_drains(
    run: RunFolder,
    input_dir: Path,
    oracle_results: Path,
    input_lines: int,
    work: Path,
    systems: tuple[str, ...],
    repeats: int,
    master: str | None,
    settings,
    timeout_s: float,
    stage: Callable[[str], None],
    kafka: dict | None = None,
    on_done: Callable[[str, float], None] = lambda system, seconds: None,
    step: str = STEP,
    cleanup: bool = False,
) -> None:
    """Every system, `repeats` times; rows appended to the run folder after each run. `step`:
    the drain step's own runs (their profile rows, and the last repeat's exports kept with the
    report), or another step's drains of other sizes (the cost model's). `cleanup`: each work
    folder of a run that succeeded is removed once its rows are written."""
    for repeat in range(1, repeats + 1):
        for system in systems:
            workdir = work / f"{system}-r{repeat}"
            log = run.log_path(f"{step}-{system}-{input_lines}-r{repeat}")
            stage(f"step {step} | {system} | {input_lines:,} lines, repeat {repeat}/{repeats}: in its own process")
            command = system_command(system, input_dir, workdir, master)
            if kafka and system in BUILDS and BUILDS[system].drains_kafka:
                command += ["--source", "kafka", "--topic", kafka["topic"], "--bootstrap", kafka["bootstrap"]]
            try:
                measurement = measure_command(command, log, timeout=timeout_s)
            except TimeoutError as error:
                measurement = None
                stage(str(error))
            rows = cost_metrics(step, system, measurement, repeat, input_lines, log)
            verdicts = compare_build(workdir, system, oracle_results, run_statuses(log), input_dir, settings)
            rows += equivalence_metrics(step, system, verdicts, repeat, input_lines)
            rows += accounting_metrics(step, system, workdir, repeat, input_lines)
            for query, dropped in sorted(watermark_drops(workdir, system).items()):
                rows.append(
                    Metric(
                        step,
                        system,
                        "watermark_dropped_rows",
                        dropped,
                        "rows",
                        query=query,
                        repeat=repeat,
                        input_lines=input_lines,
                        detail="Spark's numRowsDroppedByWatermark, summed over micro-batches (_late.json)",
                    )
                )
            for part in PROFILERS[system](workdir) if system in PROFILERS and step == STEP else []:
                rows.append(
                    Metric(
                        "profile",
                        system,
                        "profile_ms",
                        part["ms"],
                        "ms",
                        query=part["query"],
                        repeat=repeat,
                        input_lines=input_lines,
                        detail=f"{part['part']} over {part['batches'] or '-'} batches",
                    )
                )
            run.append(rows)
            failing = [v for v in verdicts if v.failing]
            stage(
                f"{system}: "
                + (
                    f"{measurement.wall_s:.1f} s wall, {measurement.cpu_s:.1f} s CPU, "
                    f"{measurement.peak_rss_mb:,.0f} MiB peak; "
                    if measurement
                    else ""
                )
                + (
                    "every export identical or explained"
                    if not failing
                    else f"{len(failing)} queries differ from the oracle"
                )
            )
            on_done(system, measurement.wall_s if measurement else timeout_s)
            if repeat == repeats and step == STEP:  # the last repeat's exports go with the report
                source = results_dir(workdir, system)
                if source.exists():
                    shutil.copytree(source, run.path / "results" / system, dirs_exist_ok=True)
            if cleanup and not failing and measurement is not None and measurement.exit_code == 0:
                shutil.rmtree(workdir, ignore_errors=True)  # a failed run's folder stays, to be read
