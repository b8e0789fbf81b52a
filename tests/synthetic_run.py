"""A synthetic `lab experiments` run folder, written the way the steps write it (RunFolder,
Metric rows, per-unit latency files, replay summaries), with no Spark: what the report
tests build their reports from. (A plain module, not a conftest: tests import it by name.)"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from experiments.harness.cost_model import fit_metrics
from experiments.harness.live_figures import UnitRow, judge, latency_metrics, verdict_rows, write_unit_rows
from experiments.harness.profiles import DRAIN_SYSTEMS, PROFILES
from experiments.harness.run_folder import ALL_QUERIES, Metric, RunFolder
from experiments.inputs.schedule import LOG_COLUMNS
from shared.catalogue import QUERY_NAMES

HOSTILE = "<script>alert('x')</script> & \"quotes\""
WALLS = {
    "spark_batch": (40.0, 44.0, 42.0),
    "duckdb": (1.0, 1.5, 1.2),
    "kappa": (70.0, 80.0, 75.0),
    "lambda": (100.0, 90.0, 120.0),
    "dstream": (50.0, 55.0, 45.0),
}
RATES = (50.0, 100.0, 200.0)
BASE_LATENCY = {"passthrough": 0.6, "kappa": 1.5, "lambda": 3.0, "dstream": 2.5}
QUERIES = ("city_revenue", "window_revenue")


def write_run(
    root: Path, run_id: str = "20260101T000000Z-quick-test", repeats: int = 3, differs: bool = True, seed: int = 1
) -> RunFolder:
    rng = random.Random(seed)
    path = Path(root) / run_id
    path.mkdir(parents=True)
    run = RunFolder(path)
    profile = PROFILES["quick"].as_json()
    run.write_environment(
        {
            "started_utc": "2026-01-01T00:00:00Z",
            "finished_utc": "2026-01-01T00:10:00Z",
            "machine": {"platform": "Linux", "cpus": 2, "memory_gib": 24.0, "load_average_at_start": [0.5, 0.4, 0.3]},
            "spark_master": "local[2]",
            "source": "files",
            "drain_input": f"/data/{HOSTILE}",
            "versions": {"pyspark": "4.2.0"},
            "settings": {"watermark_seconds": 7200},
            "profile": profile,
            "git_commit": "abc",
        }
    )
    metrics = [
        Metric("drain", "oracle", "raw_lines", 5105, "lines"),
        Metric("drain", "oracle", "valid_lines", 5000, "lines"),
        Metric("drain", "oracle", "quarantine", 100, "lines", detail="bad quantity"),
        Metric("drain", "oracle", "quarantine", 5, "lines", detail=HOSTILE),
    ]
    for repeat in range(1, repeats + 1):
        for system, walls in WALLS.items():
            wall = walls[(repeat - 1) % len(walls)]
            metrics += [
                Metric("drain", system, "wall_s", wall, "s", repeat=repeat, input_lines=5105),
                Metric("drain", system, "cpu_s", wall * 1.5, "s", repeat=repeat, input_lines=5105),
                Metric("drain", system, "peak_rss_mb", 1000 + wall, "MiB", repeat=repeat, input_lines=5105),
                Metric("drain", system, "exit_code", 0, "code", repeat=repeat, input_lines=5105),
            ]
            for query in QUERY_NAMES:
                bad = differs and system == "kappa" and query == "city_revenue"
                metrics.append(
                    Metric(
                        "drain",
                        system,
                        "equivalence",
                        2 if bad else 0,
                        "rows differing",
                        query=query,
                        repeat=repeat,
                        input_lines=5105,
                        detail=(
                            f"DIFFERS: 1 oracle rows not matched; first differences: {HOSTILE}"
                            if bad
                            else "identical: 10 rows"
                        ),
                    )
                )
            metrics += [
                Metric("drain", system, name, value, "lines", repeat=repeat)
                for name, value in (("raw_lines", 5105), ("valid_lines", 5000), ("quarantined_lines", 105))
            ]
            metrics.append(Metric("drain", system, "balanced", 1, "1 = raw lines = valid + quarantined", repeat=repeat))
        metrics.append(
            Metric(
                "profile",
                "kappa",
                "profile_ms",
                1234,
                "ms",
                query="log",
                repeat=repeat,
                detail="addBatch over 3 batches",
            )
        )
        for build, base in BASE_LATENCY.items():
            rows, start = [], 0.0
            unit = 0
            for step, rate in enumerate(RATES):
                for i in range(12):
                    intended = start + i * 50 / rate
                    for query in (*QUERIES, ALL_QUERIES) if build != "passthrough" else ("passthrough", ALL_QUERIES):
                        latency = base * (1 + step * 0.3) + rng.random() * 0.5
                        rows.append(
                            UnitRow(
                                unit, unit * 50, unit * 50 + 49, step, rate, intended, i < 2, query, round(latency, 4)
                            )
                        )
                    unit += 1
                start += 12 * 50 / rate + 4
            write_unit_rows(run.latency_path(build, repeat), rows)
            figures = latency_metrics(build, rows, repeat, 1800, 2.0)
            metrics += figures + verdict_rows("latency", build, judge(figures, RATES, 12 * 50 / RATES[0]), repeat)
            metrics += [
                Metric("latency", build, "wall_s", 60.0, "s", repeat=repeat),
                Metric("latency", build, "cpu_s", 50.0, "s", repeat=repeat),
                Metric("latency", build, "peak_rss_mb", 900.0, "MiB", repeat=repeat),
                Metric("latency", build, "exit_code", 0, "code", repeat=repeat),
            ]
            if build != "passthrough":
                metrics += [
                    Metric(
                        "latency",
                        build,
                        "equivalence",
                        0,
                        "rows differing",
                        query=q,
                        repeat=repeat,
                        detail="identical: 3 rows",
                    )
                    for q in QUERY_NAMES
                ]
            phases, first, begin = [], 0, 0.0
            for step, rate in enumerate(RATES):
                phases.append({"step": step, "rate": rate, "first_seq": first, "lines": 600, "start_s": begin})
                first, begin = first + 600, begin + 600 / rate + 4
            summary = run.replay_summary_path(build, repeat)
            summary.parent.mkdir(parents=True, exist_ok=True)
            summary.write_text(json.dumps({"start_epoch_s": 1_000_000.0, "rate_steps": phases}))
        metrics.append(
            Metric(
                "latency",
                "lambda",
                "handoff_at",
                1_000_010.0,
                "UTC epoch s",
                repeat=repeat,
                detail="batch views of master v3 serve",
            )
        )
    run.append(metrics)
    return run


def add_other_steps(run: RunFolder, seed: int = 1) -> None:
    """Rows of the throughput, reprocessing, recovery, late and code-size steps, made by the
    steps' own row builders where they have one, and recovery/*.csv timelines."""
    from experiments.harness import live_figures, recovery_step, throughput_step
    from experiments.harness.code_size import code_size_metrics

    rng = random.Random(seed)
    profile = PROFILES["quick"]
    metrics = []
    for build, knee in (("passthrough", None), ("kappa", 200.0), ("lambda", 100.0)):
        verdicts = []
        for rate in (100.0, 200.0, 400.0):
            ok = knee is None or rate <= knee
            trend = 0.1 if ok else 30.0
            p50 = (1.0 if ok else 5.0) + rng.random()
            for name, value in (
                ("latency_p50_s", p50),
                ("latency_p95_s", p50 * 1.5),
                ("commit_lag_trend_s_per_min", trend),
                ("commit_lag_rising_p", 0.01),
                ("commits_measured", 6),
                ("units_measured", 10),
                ("units_uncovered", 0),
            ):
                metrics.append(
                    Metric("throughput", build, name, value, "s", query=ALL_QUERIES, repeat=1, rate_lps=rate)
                )
            verdicts.append(live_figures.Judged(rate, ok, f"trend {trend} {HOSTILE}"))
            metrics.append(
                Metric(
                    "throughput",
                    build,
                    "bounded",
                    int(ok),
                    "1 = bounded",
                    query=ALL_QUERIES,
                    repeat=1,
                    rate_lps=rate,
                    detail=verdicts[-1].why,
                )
            )
        metrics += throughput_step.knee_metrics(build, verdicts, profile, 1)
    for build, scale in (("lambda", 0.004), ("kappa", 0.006)):
        for lines in (1000, 4000):
            # lambda's larger size as the standard profile measures it: in a copy of its follow run, no first run
            metrics += (
                [
                    Metric(
                        "reprocessing",
                        build,
                        "initial_wall_s",
                        40 + lines * scale * 2,
                        "s",
                        repeat=1,
                        input_lines=lines,
                    )
                ]
                if (build, lines) != ("lambda", 4000)
                else []
            )
            metrics += [
                Metric("reprocessing", build, "wall_s", 30 + lines * scale, "s", repeat=1, input_lines=lines),
                Metric("reprocessing", build, "cpu_s", 40 + lines * scale, "s", repeat=1, input_lines=lines),
                Metric("reprocessing", build, "peak_rss_mb", 1500, "MiB", repeat=1, input_lines=lines),
                Metric("reprocessing", build, "exit_code", 0, "code", repeat=1, input_lines=lines),
                Metric(
                    "reprocessing",
                    build,
                    "equivalence",
                    0,
                    "rows differing",
                    query="city_revenue",
                    repeat=1,
                    input_lines=lines,
                    detail="identical: the recomputed city_revenue",
                ),
            ]
    timeline_dir = run.path / "recovery"
    for number, build in enumerate(("kappa", "lambda", "dstream")):
        kill, restart = 8.0 + number, 8.5 + number
        metrics += [
            Metric("recovery", build, "kill_at_s", kill, "s", repeat=1),
            Metric("recovery", build, "restart_at_s", restart, "s", repeat=1),
            Metric("recovery", build, "first_commit_after_restart_s", 20.0, "s", repeat=1),
            Metric("recovery", build, "catch_up_s", 25.0 + number, "s", repeat=1),
        ]
        for query in ("daily_revenue", "line_accounting"):
            lost = 7 if build == "dstream" else 0
            metrics += [
                Metric("recovery", build, "lost_lines", lost, "order lines", query=query, repeat=1),
                Metric("recovery", build, "duplicated_lines", 0, "order lines", query=query, repeat=1),
            ]
        metrics += [
            Metric(
                "faults",
                build,
                "landed_at_s",
                1.5 if build != "lambda" else 9.0,
                "s since the replay started",
                repeat=1,
                query="poison file: sales_0001_stray.csv",
                detail="a stray binary file, lines 50-89",
            ),
            Metric(
                "faults",
                build,
                "covered_s",
                None if build == "dstream" else 2.5,
                "s",
                repeat=1,
                query="poison file: sales_0001_stray.csv",
            ),
            Metric("faults", build, "lost_lines", 0, "lines", repeat=1, query="poison files"),
            Metric("faults", build, "duplicated_lines", 0, "lines", repeat=1, query="poison files"),
        ]
        units = [(i * 0.5, i * 50 + 49) for i in range(40)]
        progress = [(t + 2 if t < kill else t + 30, seq) for t, seq in units[::4]]
        recovery_step.write_timeline(
            timeline_dir / f"{build}-r1.csv",
            [("emitted", t, s) for t, s in units] + [("committed", t, s) for t, s in progress],
        )
    metrics += [
        Metric("late", "input", "late_lines", 100, "lines", input_lines=2100),
        Metric("late", "input", "valid_lines", 2000, "lines", input_lines=2100),
    ]
    for build, missing, after in (("kappa", 180, None), ("lambda", 90, 0)):
        metrics += [
            Metric(
                "late", build, "window_lines_missing", missing, "(line, window) pairs", query="window_revenue", repeat=1
            ),
            Metric("late", build, "window_rows_differing", missing // 3, "rows", query="window_revenue", repeat=1),
            Metric("late", build, "counted_lines", 2000, "order lines", query="daily_revenue", repeat=1),
            Metric(
                "late",
                build,
                "equivalence",
                missing // 3,
                "rows differing",
                query="window_revenue",
                repeat=1,
                detail="explained by the watermark: 90 lines",
            ),
        ]
        if after is not None:
            metrics.append(
                Metric(
                    "late",
                    build,
                    "window_lines_missing_after_batch",
                    after,
                    "(line, window) pairs",
                    query="window_revenue",
                    repeat=1,
                )
            )
    metrics.append(
        Metric(
            "late",
            "dstream",
            "equivalence",
            None,
            "rows differing",
            query="window_revenue",
            repeat=1,
            detail="not applicable: processing-time windows",
        )
    )
    metrics += code_size_metrics()
    metrics += cost_rows()
    metrics += soak_rows()
    run.append(metrics)
    run.append(fit_metrics(run.metrics(), DRAIN_SYSTEMS))  # as the drains step fits its sizes


def soak_rows() -> list[Metric]:
    """The soak step's rows of kappa over three one-minute windows, made by its own builders:
    its p99 rising by half, its memory flat after the first window."""
    from experiments.harness.live_figures import UnitRow
    from experiments.harness.measure import Sample
    from experiments.harness.soak_figures import FileCount, growth_metrics, window_metrics

    start = 1_000_000.0
    units = [UnitRow(i, 50 * i, 50 * i + 49, 0, 50.0, float(i), False, ALL_QUERIES, 2.0 + i // 120) for i in range(180)]
    samples = [Sample(start + t, 900.0 if t < 60 else 1000.0, 0.5 * t) for t in range(0, 180, 10)]
    files = [FileCount(start + t + 5, "kappa/v1/tables/partials", 1 + t // 20) for t in range(0, 180, 10)]
    windows = window_metrics("kappa", units, samples, files, start, 60.0, 50.0, 9000)
    rate = Metric("soak", "kappa", "soak_rate_lps", 50.0, "lines/s", input_lines=9000, detail="half of its knee")
    return [rate, *windows, *growth_metrics("kappa", windows, 50.0, 9000)]


# The cost step's made-up drains: seconds fixed and per million lines of each system's line.
COST_LINES = {"spark_batch": (42.0, 40.0), "duckdb": (1.2, 6.0), "kappa": (75.0, 90.0), "lambda": (100.0, 60.0)}
COST_SIZES = (20_000, 200_000)


def cost_rows() -> list[Metric]:
    """The cost step's rows, each run exactly on its system's line; dstream's largest run failed."""
    rows = []
    for system, (fixed, per_million) in COST_LINES.items():
        for lines in COST_SIZES:
            wall = fixed + per_million * lines / 1e6
            rows += [
                Metric("cost", system, "wall_s", wall, "s", repeat=1, input_lines=lines),
                Metric("cost", system, "cpu_s", 1.5 * wall, "s", repeat=1, input_lines=lines),
                Metric("cost", system, "peak_rss_mb", 500 + lines / 1000, "MiB", repeat=1, input_lines=lines),
                Metric("cost", system, "exit_code", 0, "code", repeat=1, input_lines=lines),
            ]
    rows += [
        Metric("cost", "dstream", "wall_s", 30.0, "s", repeat=1, input_lines=20_000),
        Metric("cost", "dstream", "exit_code", 0, "code", repeat=1, input_lines=20_000),
        Metric("cost", "dstream", "wall_s", 50.0, "s", repeat=1, input_lines=200_000),
        Metric("cost", "dstream", "exit_code", 1, "code", repeat=1, input_lines=200_000, detail="see logs/x.log"),
    ]
    return rows


def write_replay_log(folder: Path, phases: list[dict], units: list[tuple[int, int, float]]) -> None:
    """units: (first_seq, last_seq, intended_s); start at epoch 1000."""
    folder.mkdir(parents=True)
    (folder / "replay_summary.json").write_text(json.dumps({"start_epoch_s": 1000.0, "rate_steps": phases}))
    with open(folder / "replay_log.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_COLUMNS)
        for unit, (first, last, intended) in enumerate(units):
            writer.writerow([unit, first, last, last - first + 1, "s.csv", f"{unit:06d}-s.csv", intended, intended])
