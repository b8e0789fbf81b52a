"""`lab bench`: each build's drain in its own process against a Spark batch baseline and
DuckDB on the same input, every export checked against the oracle, ratios with their spread.

Shaped like pola-rs/polars-benchmark: one folder per system (the builds are `lab run
BUILD`, the baselines are experiments/baselines/), each measured run appends one row to a
metrics CSV, and only the reporting step (`report`) reads that CSV back.

What one run of `lab bench` does:
1. Input: `--input DIR`, or `--rows N` generated once into DATA/input-<rows>-<seed> (reused
   while its manifest says it is complete and made with the same options).
2. The oracle once per input, in this process (it has no Spark).
3. For each repeat, each system in its own process (own JVM, own fresh workdir under
   DATA/work/<run_id>/): `spark_batch`, `duckdb`, `kappa`, `lambda`, `dstream`. The
   process tree (the Python driver, its JVM, Python workers) is polled every 0.2 s
   (`MeasuredCommand`, experiments/harness/measure.py): wall seconds of the whole process (interpreter and JVM start
   included, for builds and baselines alike), CPU seconds (user + system of every process
   seen in the tree, each one's last reading kept so exited children still count) and the
   peak of the tree's summed RSS. The export is compared byte for byte with the oracle's
   (experiments/harness/verify.py `compare_export`).
4. The live phase (`kappa_live`, unless --no-live; experiments/harness/follow.py, which
   `lab experiments` uses for every build): `lab run kappa --follow` on an empty
   landing directory, then `lab replay` lands a live input there at a fixed rate in small
   files (one file per micro-batch); once the commit log covers the last unit for every
   query, SIGTERM to kappa's process group. Latency per unit = the latest, over queries, of
   the first commit covering it (WORKDIR/commits/kappa.csv joined with the replay log,
   experiments/harness/latency.py) minus the unit's intended emission time, after a stated
   warm-up of units is dropped.
5. `report`: reads this run's rows back from the metrics CSV and prints the medians per
   build and the ratios F1-F5 (median of the per-repeat ratios, min-max), met or not.

A profile goes beside the metrics (profile.csv): for Kappa and Lambda, the sums of Spark's
per-batch `durationMs` parts for each streaming query, the steps inside their foreachBatch
functions and Lambda's phases (shared/progress_log.py); for the Spark baseline its steps.
The DStream build keeps no progress record yet, so it has no profile rows.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import statistics
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from experiments.harness.builds import ARCHITECTURES
from experiments.harness.latency import slowest_query_latencies as unit_latencies
from experiments.harness.measure import Measurement, measure_command
from experiments.harness.run_folder import append_rows, read_metrics, write_environment
from experiments.harness.systems import PROFILERS, run_statuses, system_command
from experiments.harness.verify import FAILING, IDENTICAL, NOT_APPLICABLE, compare_export
from experiments.inputs.prepared import prepare_input
from experiments.progress import Progress
from experiments.stats import Spread, percentile
from shared.catalogue import QUERY_NAMES
from shared.export import results_dir
from shared.settings import WorkloadSettings

DRAIN_BUILDS = ARCHITECTURES
BASELINES = ("spark_batch", "duckdb")
SYSTEMS = ("spark_batch", "duckdb", *DRAIN_BUILDS)  # the order each repeat runs them in
LIVE = "kappa_live"
METRICS_COLUMNS = (
    "run_id",
    "timestamp",
    "build",
    "repeat",
    "input_lines",
    "master",
    "wall_s",
    "cpu_s",
    "peak_rss_mb",
    "exit_code",
    "identical",
    "detail",
    # kappa_live only: the live phase's rate and units, and the latency of the units measured
    "live_rate_lps",
    "live_units",
    "warmup_units",
    "uncovered_units",
    "latency_p50_s",
    "latency_p95_s",
    "latency_max_s",
)
PROFILE_COLUMNS = ("run_id", "build", "repeat", "query", "part", "ms", "batches")


# ---------------------------------------------------------------------------------------
# Options, inputs and commands
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    rows: int | None = None  # generate this many rows (or use input_dir)
    input_dir: str | None = None
    seed: int = 7
    repeats: int = 3
    builds: tuple[str, ...] = SYSTEMS  # any of SYSTEMS; the live phase needs kappa
    master: str | None = None
    live: bool = True
    live_seconds: float = 60.0
    live_rate: float = 1000.0  # lines per second
    live_file_lines: int = 1000  # lines per landed file (= per kappa micro-batch)
    live_interval: str = "500 milliseconds"  # kappa's processing-time trigger in the live phase
    live_drain_timeout_s: float = 300.0  # after the replay, how long kappa may take to commit the last file
    warmup_units: int = 10
    metrics: Path = Path("reports/bench/metrics.csv")
    data: Path = Path("data/bench")
    timeout_s: float = 3600.0

    def validated(self) -> BenchOptions:
        if (self.rows is None) == (self.input_dir is None):
            raise ValueError("give either --rows N (a generated input) or --input DIR")
        unknown = set(self.builds) - set(SYSTEMS)
        if unknown or not self.builds:
            raise ValueError(f"unknown builds {sorted(unknown)}: choose among {', '.join(SYSTEMS)}")
        if (
            self.repeats < 1
            or self.live_seconds <= 0
            or self.live_drain_timeout_s <= 0
            or self.live_rate <= 0
            or self.live_file_lines < 1
        ):
            raise ValueError(
                "repeats, live seconds, live rate, live file lines and the live drain timeout must be positive"
            )
        if self.warmup_units < 0:
            raise ValueError("warm-up units cannot be negative")
        return self

    @property
    def runs_live(self) -> bool:
        return self.live and "kappa" in self.builds


def check_export(
    workdir: Path, export_build: str, oracle_results: Path, statuses: Mapping[str, str]
) -> tuple[bool, str]:
    """(identical, detail): the export of `export_build` in `workdir` against the oracle's.
    Identical means no query DIFFERS or is MISSING; queries a build does not implement and
    queries the input cannot answer are named in the detail, not counted as failures."""
    shutil.copytree(oracle_results, results_dir(workdir, "oracle"), dirs_exist_ok=True)
    notes = []
    identical = True
    for query in QUERY_NAMES:
        comparison = compare_export(workdir, export_build, query, statuses.get(query))
        if comparison.status in FAILING:
            identical = False
        if comparison.status not in (IDENTICAL, NOT_APPLICABLE):
            notes.append(f"{query}: {comparison.status} ({comparison.detail})")
    return identical, "; ".join(notes)


def _append_profile(path: Path, run_id: str, build: str, repeat: int, workdir: Path) -> None:
    profiler = PROFILERS.get("kappa" if build == LIVE else build)
    rows = profiler(workdir) if profiler else []
    if rows:
        append_rows(
            path, PROFILE_COLUMNS, [{"run_id": run_id, "build": build, "repeat": repeat, **row} for row in rows]
        )


# ---------------------------------------------------------------------------------------
# The live phase
# ---------------------------------------------------------------------------------------


@dataclass
class LiveOutcome:
    measurement: Measurement | None
    latencies: list[float]  # per measured unit, seconds (warm-up dropped)
    units: int
    uncovered: int
    problem: str = ""


def run_live(
    options: BenchOptions, live_input: Path, workdir: Path, queries: tuple[str, ...], progress: Progress
) -> LiveOutcome:
    """kappa --follow on a landing directory, the replayer feeding it at one rate, one landed
    file per micro-batch (experiments/harness/follow.py); see the module doc."""
    from experiments.harness.follow import followers, run_follow

    follower = followers({"kappa": ("--max-files-per-trigger", "1")})["kappa"]  # one landed file, one micro-batch
    run = run_follow(
        follower,
        live_input,
        workdir,
        rate=options.live_rate,
        interval=options.live_interval,
        master=options.master,
        drain_timeout_s=options.live_drain_timeout_s,
        stage=lambda message: progress.stage(f"{LIVE}: {message}"),
    )
    if run.measurement is None:
        return LiveOutcome(None, [], 0, 0, run.problem)
    if not (run.replay_dir / "replay_log.csv").exists():
        return LiveOutcome(run.measurement, [], 0, 0, run.problem or "no replay log")
    per_unit = unit_latencies(run.replay_dir, run.commit_log, queries)
    measured = per_unit[options.warmup_units :]
    latencies = [v for v in measured if v is not None]
    return LiveOutcome(run.measurement, latencies, len(measured), len(measured) - len(latencies), run.problem)


# ---------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def environment(options: BenchOptions, input_dir: Path, raw_lines: int, master: str) -> dict:
    """The run folder's environment (machine, versions, settings, commit) with bench's options."""
    from experiments.harness.run_folder import environment as run_environment

    options_text = {k: str(v) for k, v in options.__dict__.items()}
    return {
        **run_environment(options_text, "files", master, str(input_dir)),
        "raw_lines": raw_lines,
        "options": options_text,
    }


def run_bench(options: BenchOptions, progress: Progress | None = None, out=print) -> int:
    """Everything `lab bench` does; returns the exit status (1 when an export differs or a
    run failed; a live run stopped behind the input has no export to compare, and F4 shows it)."""
    from experiments.reference.oracle import run_oracle
    from shared.inputs import inspect_input
    from shared.settings import LabSettings

    options = options.validated()
    progress = progress or Progress()
    settings = WorkloadSettings.from_env()
    master = options.master or LabSettings.from_env().spark_master
    run_id = new_run_id()
    data = options.data
    work = (data / "work" / run_id).resolve()
    metrics, profile = options.metrics, options.metrics.with_name("profile.csv")
    if options.input_dir:
        input_dir = Path(options.input_dir).expanduser().resolve()
    else:
        assert options.rows is not None  # validated: --rows without --input
        input_dir = prepare_input(data, options.rows, options.seed, progress)
    inspect_input(input_dir)
    progress.stage(f"run {run_id}: oracle on {input_dir}")
    oracle = run_oracle(input_dir, work / "oracle", settings)
    oracle_results = results_dir(work / "oracle", "oracle")
    env = environment(options, input_dir, oracle.raw_lines, master)
    (metrics.parent / "runs").mkdir(parents=True, exist_ok=True)
    write_environment(metrics.parent / "runs" / f"{run_id}.json", env)

    live_input = live_oracle = None
    live_queries: tuple[str, ...] = ()
    if options.runs_live:
        live_rows = int(options.live_rate * options.live_seconds)
        files = max(1, math.ceil(live_rows / options.live_file_lines))
        live_input = prepare_input(data, live_rows, options.seed, progress, prefix="live", files=files)
        progress.stage(f"run {run_id}: oracle on the live input {live_input}")
        live_oracle = run_oracle(live_input, work / "oracle-live", settings)
        live_queries = tuple(q for q in QUERY_NAMES if q not in inspect_input(live_input).not_applicable())

    systems = [s for s in SYSTEMS if s in options.builds]
    identical: bool | None  # None: not compared
    for repeat in range(1, options.repeats + 1):
        for system in systems:
            workdir = work / f"{system}-r{repeat}"
            progress.stage(f"repeat {repeat}/{options.repeats}: {system} in its own process")
            started = _now()
            try:
                m = measure_command(
                    system_command(system, input_dir, workdir, options.master),
                    workdir / "run.log",
                    timeout=options.timeout_s,
                )
                identical, detail = check_export(workdir, system, oracle_results, run_statuses(workdir / "run.log"))
                if m.exit_code != 0:
                    identical, detail = False, f"exit code {m.exit_code}, see {workdir / 'run.log'}"
            except TimeoutError as error:
                m, identical, detail = None, False, str(error)
            append_rows(
                metrics,
                METRICS_COLUMNS,
                [
                    _metric_row(
                        run_id,
                        started,
                        system,
                        repeat,
                        oracle.raw_lines,
                        "" if system == "duckdb" else master,
                        m,
                        identical,
                        detail,
                    )
                ],
            )
            progress.stage(
                f"{system}: "
                + (f"{m.wall_s:.1f} s wall, {m.cpu_s:.1f} s CPU, {m.peak_rss_mb:,.0f} MiB peak, " if m else "")
                + ("identical to the oracle" if identical else f"NOT identical: {detail}")
            )
            _append_profile(profile, run_id, system, repeat, workdir)
        if options.runs_live:
            assert live_input is not None and live_oracle is not None  # prepared above
            workdir = work / f"{LIVE}-r{repeat}"
            progress.stage(f"repeat {repeat}/{options.repeats}: {LIVE}")
            started = _now()
            live = run_live(options, live_input, workdir, live_queries, progress)
            if live.measurement is None or live.measurement.exit_code != 0:
                code = "no exit" if live.measurement is None else f"exit code {live.measurement.exit_code}"
                identical, detail = (
                    False,
                    "; ".join(d for d in (live.problem, f"{code}, see {workdir / 'run.log'}") if d),
                )
            elif live.problem:  # fell behind and was stopped before the end of the replay: a partial export,
                # nothing to compare (F4 says how far behind; no correctness failure)
                identical, detail = None, f"{live.problem}; stopped before the end of the replay, export not compared"
            else:
                identical, detail = check_export(
                    workdir, "kappa", results_dir(work / "oracle-live", "oracle"), run_statuses(workdir / "run.log")
                )
            row = _metric_row(
                run_id, started, LIVE, repeat, live_oracle.raw_lines, master, live.measurement, identical, detail
            )
            row.update(
                live_rate_lps=options.live_rate,
                live_units=live.units,
                warmup_units=options.warmup_units,
                uncovered_units=live.uncovered,
            )
            if live.latencies:
                row.update(
                    latency_p50_s=statistics.median(live.latencies),
                    latency_p95_s=percentile(live.latencies, 95),
                    latency_max_s=max(live.latencies),
                )
            append_rows(metrics, METRICS_COLUMNS, [row])
            _append_profile(profile, run_id, LIVE, repeat, workdir)
            progress.stage(
                f"{LIVE}: "
                + (
                    f"latency median {statistics.median(live.latencies):.2f} s over {len(live.latencies)} units"
                    if live.latencies
                    else "no latency measured"
                )
                + ("" if identical else f"; {'NOT identical' if identical is False else 'note'}: {detail}")
            )
    progress.stage("report (from the metrics CSV)")
    out(report(metrics, run_id, options, input_dir, work))
    rows = read_metrics(metrics, run_id)
    return 0 if rows and not any(r["identical"] == "0" for r in rows) else 1


def _metric_row(
    run_id: str,
    started: str,
    build: str,
    repeat: int,
    input_lines: int,
    master: str,
    m: Measurement | None,
    identical: bool | None,
    detail: str,
) -> dict:
    """`identical` None (an empty cell): the export was not compared (a live run stopped behind the input)."""
    row = {
        "run_id": run_id,
        "timestamp": started,
        "build": build,
        "repeat": repeat,
        "input_lines": input_lines,
        "master": master,
        "identical": identical,
        "detail": detail,
    }
    if m is not None:
        row.update(wall_s=m.wall_s, cpu_s=m.cpu_s, peak_rss_mb=m.peak_rss_mb, exit_code=m.exit_code)
    return row


# ---------------------------------------------------------------------------------------
# The report: only from the metrics CSV
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    numerator: str  # build whose value goes on top (or LIVE for the latency)
    denominator: str | None
    limit: float
    at_least: bool  # True: the figure must be >= limit; False: <= limit
    unit: str = "x"


TARGETS = (
    Target(
        "F1", "Kappa drain throughput over Spark batch (batch time / kappa time)", "spark_batch", "kappa", 0.5, True
    ),
    Target("F2", "Lambda full run time over Spark batch", "lambda", "spark_batch", 2.0, False),
    Target("F3", "DStream drain time over Spark batch", "dstream", "spark_batch", 4.0, False),
    Target(
        "F4", "Kappa live latency (median over units, arrival to last query's commit)", LIVE, None, 1.0, False, " s"
    ),
    Target("F5", "Spark batch time over DuckDB time", "spark_batch", "duckdb", 3.0, False),
)


def _by_repeat(rows: list[dict], build: str, column: str) -> dict[int, float]:
    """repeat -> value of `column` for the build's successful runs (exit code 0)."""
    found = {}
    for row in rows:
        if row["build"] == build and row.get("exit_code") == "0" and row.get(column):
            found[int(row["repeat"])] = float(row[column])
    return found


def ratio_values(rows: list[dict], target: Target) -> list[float]:
    """The target's figure per repeat: a ratio of wall times paired by repeat, or the live
    latency median of each repeat."""
    if target.denominator is None:
        return list(_by_repeat(rows, target.numerator, "latency_p50_s").values())
    top, bottom = _by_repeat(rows, target.numerator, "wall_s"), _by_repeat(rows, target.denominator, "wall_s")
    return [top[r] / bottom[r] for r in sorted(set(top) & set(bottom)) if bottom[r] > 0]


def target_line(rows: list[dict], target: Target) -> str:
    spread = Spread.of(ratio_values(rows, target))
    bound = f"{'>=' if target.at_least else '<='} {target.limit:g}{target.unit}"
    if spread is None:
        needs = [b for b in (target.numerator, target.denominator) if b]
        return (
            f"{target.name} {target.text}: not measured (needs successful {' and '.join(needs)} runs); target {bound}"
        )
    met = spread.median >= target.limit if target.at_least else spread.median <= target.limit
    caveat = ""
    if target.denominator is None:
        live = [r for r in rows if r["build"] == target.numerator and r.get("exit_code") == "0"]
        uncovered, units = (
            sum(int(r["uncovered_units"] or 0) for r in live),
            sum(int(r["live_units"] or 0) for r in live),
        )
        if uncovered:
            caveat = (
                f" ({uncovered} of {units} measured units were never covered before the stop: kappa fell "
                "behind the input, so this is a lower bound)"
            )
    return (
        f"{target.name} {target.text}: {spread.text(2, target.unit)}{caveat}; target {bound}: "
        f"{'met' if met else 'NOT MET'}"
    )


def build_table(rows: list[dict]) -> str:
    from experiments.harness.verify import format_text_table

    table = []
    for build in (*SYSTEMS, LIVE):
        mine = [r for r in rows if r["build"] == build]
        if not mine:
            continue
        ok = [r for r in mine if r.get("exit_code") == "0"]

        def spread(column: str, digits: int = 1, ok: list = ok) -> str:
            found = Spread.of([float(r[column]) for r in ok if r.get(column)])
            return "-" if found is None else found.text(digits)

        identical, compared = sum(r["identical"] == "1" for r in mine), sum(r["identical"] != "" for r in mine)
        table.append(
            [
                build,
                str(len(mine)),
                spread("wall_s"),
                spread("cpu_s"),
                spread("peak_rss_mb", 0),
                f"{identical}/{compared}" + (f" ({len(mine) - compared} not compared)" if compared < len(mine) else ""),
                spread("latency_p50_s", 2) if build == LIVE else "",
            ]
        )
    return format_text_table(
        ["build", "runs", "wall s: median (min-max)", "CPU s", "peak RSS MiB", "identical", "live latency p50 s"], table
    )


def report(
    metrics: Path,
    run_id: str,
    options: BenchOptions | None = None,
    input_dir: Path | None = None,
    work: Path | None = None,
) -> str:
    """The printed summary of one run, from the rows of `run_id` in the metrics CSV."""
    rows = read_metrics(metrics, run_id)
    if not rows:
        return f"no rows of run {run_id} in {metrics}"
    first = rows[0]
    master = next((r["master"] for r in rows if r["master"]), "none (DuckDB only)")
    lines = [
        f"lab bench run {run_id}: {int(first['input_lines']):,} raw input lines"
        + (f" ({input_dir})" if input_dir else "")
        + f", Spark master {master}, "
        f"{max(int(r['repeat']) for r in rows)} repeat(s)",
        "Wall time is each whole process: interpreter and JVM start, reading, computing, writing the export "
        "(builds and baselines alike, so ratios compare like with like). CPU s is user + system of the whole "
        "process tree (driver, JVM, Python workers); peak RSS is the tree's summed resident memory.",
        "",
        build_table(rows),
        "",
    ]
    live = [r for r in rows if r["build"] == LIVE]
    if live:
        r = live[0]
        lines.append(
            f"Live phase ({LIVE}): kappa --follow fed by the replayer at {float(r['live_rate_lps']):,.0f} "
            f"lines/s, one landed file per micro-batch; latency per unit = latest over queries of the first "
            f"commit covering it - its intended emission time; first {r['warmup_units']} units dropped as "
            f"warm-up; {LIVE} wall/CPU cover the whole live process (start, follow, stop, export)."
        )
        profile = read_metrics(metrics.with_name("profile.csv"), run_id)
        for r in live:
            figures = (
                f"p50 {float(r['latency_p50_s']):.2f} s, p95 {float(r['latency_p95_s']):.2f} s, "
                f"max {float(r['latency_max_s']):.2f} s"
                if r.get("latency_p50_s")
                else "no latency"
            )
            lines.append(
                f"  repeat {r['repeat']}: live input of {int(r['input_lines']):,} raw lines; "
                f"{r['live_units']} units measured ({r['uncovered_units']} never covered): {figures}"
            )
            per_batch = [
                f"{p['query']} {float(p['ms']) / 1000 / int(p['batches']):.1f} s"
                for p in profile
                if p["build"] == LIVE
                and p["repeat"] == r["repeat"]
                and p["part"] == "triggerExecution"
                and p["batches"]
                and int(p["batches"])
            ]
            if per_batch:
                arrival = (
                    f"; a file landed every {options.live_file_lines / options.live_rate:.1f} s"
                    if options is not None
                    else ""
                )
                lines.append(
                    f"    mean micro-batch time per streaming query (profile.csv): {', '.join(per_batch)}" + arrival
                )
        lines.append("")
    lines += [target_line(rows, t) for t in TARGETS]
    lines.append("Ratios: per repeat, then the median of the repeats with (min-max).")
    differs = [r for r in rows if r["identical"] == "0"]
    lines.append("")
    if differs:
        for r in differs:
            lines.append(f"NOT IDENTICAL to the oracle: {r['build']} repeat {r['repeat']}: {r['detail']}")
    else:
        lines.append("every export compared is identical to the oracle's")
    lines += [
        f"export not compared: {r['build']} repeat {r['repeat']}: {r['detail']}" for r in rows if r["identical"] == ""
    ]
    notes = sorted({r["detail"] for r in rows if r["identical"] == "1" and r["detail"]})
    lines += [f"note: {n}" for n in notes]
    lines.append(
        f"metrics: {metrics} (run_id {run_id}); profile: {metrics.with_name('profile.csv')}"
        " (Kappa's and Lambda's per-query durationMs sums, their foreachBatch steps and Lambda's phases;"
        " DStream records no progress yet)"
    )
    if work is not None:
        lines.append(f"work folders and logs: {work}")
    return "\n".join(lines)
