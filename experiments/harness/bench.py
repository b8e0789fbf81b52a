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
   (`MeasuredCommand`): wall seconds of the whole process (interpreter and JVM start
   included, for builds and baselines alike), CPU seconds (user + system of every process
   seen in the tree, each one's last reading kept so exited children still count) and the
   peak of the tree's summed RSS. The export is compared byte for byte with the oracle's
   (experiments/harness/verify.py `compare_export`).
4. The live phase (`kappa_live`, unless --no-live): `lab run kappa --follow` on an empty
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

import csv
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import psutil

from experiments.harness.verify import FAILING, IDENTICAL, NOT_APPLICABLE, compare_export
from experiments.progress import Progress
from shared.commit_log import append_csv_rows, commit_log_path, read_commits
from shared.export import QUERY_NAMES, results_dir
from shared.settings import WorkloadSettings

DRAIN_BUILDS = ("kappa", "lambda", "dstream")
BASELINES = ("spark_batch", "duckdb")
SYSTEMS = ("spark_batch", "duckdb", *DRAIN_BUILDS)   # the order each repeat runs them in
LIVE = "kappa_live"
METRICS_COLUMNS = (
    "run_id", "timestamp", "build", "repeat", "input_lines", "master",
    "wall_s", "cpu_s", "peak_rss_mb", "exit_code", "identical", "detail",
    # kappa_live only: the live phase's rate and units, and the latency of the units measured
    "live_rate_lps", "live_units", "warmup_units", "uncovered_units",
    "latency_p50_s", "latency_p95_s", "latency_max_s",
)
PROFILE_COLUMNS = ("run_id", "build", "repeat", "query", "part", "ms", "batches")
SAMPLE_SECONDS = 0.2
# After the measured process exits, its JVM and workers get this long to go too (their CPU
# still counts); what is left is killed, so the next measurement starts on a quiet machine.
TAIL_SECONDS = 15.0


# ---------------------------------------------------------------------------------------
# Measuring a command: wall time, CPU seconds and peak RSS of its whole process tree
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    wall_s: float        # start to the exit of the command's own process
    cpu_s: float         # user + system over every process seen in its tree
    peak_rss_mb: float   # highest sum of RSS over the tree at one sample (MiB)
    exit_code: int
    processes: int       # how many distinct processes were seen


class MeasuredCommand:
    """Runs a command in its own session (so its process group can be signalled) with
    output to `log_path`, and polls its process tree every `interval` seconds.

    `start()`, then `wait()` returns the Measurement; in between, `signal_group` and
    `running` let a caller drive a long-running command (the live phase)."""

    def __init__(self, command: list[str], log_path: str | os.PathLike, *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None, interval: float = SAMPLE_SECONDS):
        self.command, self.log_path, self.env, self.cwd, self.interval = command, Path(log_path), env, cwd, interval
        self._cpu: dict[tuple[int, float], float] = {}        # (pid, create time) -> last user+system
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._peak_rss = 0
        self._exited = threading.Event()
        self._ended_at: float | None = None

    def start(self) -> "MeasuredCommand":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._started_at = time.monotonic()
        self.popen = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=dict(self.env) if self.env is not None else None, cwd=self.cwd,
                                      start_new_session=True)
        self.pgid = self.popen.pid   # a new session: the process leads its own group
        try:
            self._root = psutil.Process(self.popen.pid)
            self._procs[(self._root.pid, self._root.create_time())] = self._root
        except psutil.Error:
            self._root = None
        threading.Thread(target=self._await_exit, daemon=True).start()
        self._sampler = threading.Thread(target=self._sample_until_exit, daemon=True)
        self._sampler.start()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> Measurement:
        """Wait for the command to exit (SIGKILL to its group after `timeout` seconds, then
        TimeoutError), let its remaining processes go, and return what was measured."""
        if not self._exited.wait(timeout):
            self.signal_group(signal.SIGKILL)
            self._exited.wait(30)
            self._finish()
            raise TimeoutError(f"{' '.join(self.command[:6])} ... did not finish within {timeout:.0f} s "
                               f"(killed; its output is in {self.log_path})")
        return self._finish()

    def _finish(self) -> Measurement:
        self._sampler.join()
        exit_code = self.popen.wait()   # reaps it (the sampler read its last CPU times as a zombie)
        self._log.close()
        return Measurement(wall_s=round((self._ended_at or time.monotonic()) - self._started_at, 3),
                           cpu_s=round(sum(self._cpu.values()), 3), peak_rss_mb=round(self._peak_rss / 2**20, 1),
                           exit_code=exit_code, processes=len(self._cpu))

    def _await_exit(self) -> None:
        """Notes the moment the process exits without reaping it, so its CPU times can
        still be read (a zombie keeps them) before `wait` reaps it."""
        try:
            os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        self._ended_at = time.monotonic()
        self._exited.set()

    def _tree(self) -> list[psutil.Process]:
        if self._root is not None:
            try:
                for child in self._root.children(recursive=True):
                    key = (child.pid, child.create_time())
                    self._procs.setdefault(key, child)
            except psutil.Error:
                pass
        return list(self._procs.values())

    def _sample(self) -> int:
        """One reading of every known process; returns how many are still alive."""
        total_rss, alive = 0, 0
        for process in self._tree():
            key = (process.pid, process.create_time())
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    self._cpu[key] = times.user + times.system
                    if process.status() == psutil.STATUS_ZOMBIE:
                        continue
                    total_rss += process.memory_info().rss
                    alive += 1
            except psutil.Error:   # gone since the last reading: its last CPU times stay counted
                continue
        self._peak_rss = max(self._peak_rss, total_rss)
        return alive

    def _sample_until_exit(self) -> None:
        while not self._exited.wait(self.interval):
            self._sample()
        self._sample()   # the command's own process is a zombie now: its final CPU times
        deadline = time.monotonic() + TAIL_SECONDS
        while time.monotonic() < deadline:   # its JVM and workers exit on their own shortly
            if self._sample() == 0:
                return
            time.sleep(self.interval)
        self.signal_group(signal.SIGKILL)


def measure_command(command: list[str], log_path: str | os.PathLike, *, timeout: float | None = None,
                    env: Mapping[str, str] | None = None) -> Measurement:
    """Run `command` to its end and measure it (see MeasuredCommand)."""
    return MeasuredCommand(command, log_path, env=env).start().wait(timeout)


# ---------------------------------------------------------------------------------------
# Options, inputs and commands
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchOptions:
    rows: int | None = None              # generate this many rows (or use input_dir)
    input_dir: str | None = None
    seed: int = 7
    repeats: int = 3
    builds: tuple[str, ...] = SYSTEMS    # any of SYSTEMS; the live phase needs kappa
    master: str | None = None
    live: bool = True
    live_seconds: float = 60.0
    live_rate: float = 1000.0            # lines per second
    live_file_lines: int = 1000          # lines per landed file (= per kappa micro-batch)
    live_interval: str = "500 milliseconds"   # kappa's processing-time trigger in the live phase
    live_drain_timeout_s: float = 300.0  # after the replay, how long kappa may take to commit the last file
    warmup_units: int = 10
    metrics: Path = Path("reports/bench/metrics.csv")
    data: Path = Path("data/bench")
    timeout_s: float = 3600.0

    def validated(self) -> "BenchOptions":
        if (self.rows is None) == (self.input_dir is None):
            raise ValueError("give either --rows N (a generated input) or --input DIR")
        unknown = set(self.builds) - set(SYSTEMS)
        if unknown or not self.builds:
            raise ValueError(f"unknown builds {sorted(unknown)}: choose among {', '.join(SYSTEMS)}")
        if self.repeats < 1 or self.live_seconds <= 0 or self.live_drain_timeout_s <= 0 or self.live_rate <= 0 or self.live_file_lines < 1:
            raise ValueError("repeats, live seconds, live rate, live file lines and the live drain timeout "
                             "must be positive")
        if self.warmup_units < 0:
            raise ValueError("warm-up units cannot be negative")
        return self

    @property
    def runs_live(self) -> bool:
        return self.live and "kappa" in self.builds


def python_command(*args: str) -> list[str]:
    """A command run by this very interpreter (the venv's): `lab ...` is `-m experiments.cli`."""
    return [sys.executable, *args]


def system_command(system: str, input_dir: Path, workdir: Path, master: str | None) -> list[str]:
    if system == "spark_batch":
        command = python_command("-m", "experiments.baselines.spark_batch", "--input", str(input_dir),
                                 "--workdir", str(workdir))
    elif system == "duckdb":
        return python_command("-m", "experiments.baselines.duckdb_batch", "--input", str(input_dir),
                              "--workdir", str(workdir))
    else:
        command = python_command("-m", "experiments.cli", "run", system, "--input", str(input_dir),
                                 "--workdir", str(workdir), "--fresh")
    return command + (["--master", master] if master else [])


def prepare_input(data: Path, rows: int, seed: int, progress: Progress, prefix: str = "input",
                  files: int | None = None) -> Path:
    """A generated input in DATA/<prefix>-<rows>[-f<files>]-<seed>, reused when its manifest
    (written last, so present only when complete) records the same options."""
    from experiments.inputs.generate import MANIFEST_NAME, GeneratorOptions, _manifest_options, generate

    options = GeneratorOptions(rows=rows, seed=seed, files=files,
                               watermark_seconds=WorkloadSettings.from_env().watermark_seconds)
    target = data / (f"{prefix}-{rows}" + (f"-f{files}" if files else "") + f"-{seed}")
    manifest = target / MANIFEST_NAME
    if manifest.exists():
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8")).get("options")
        except ValueError:
            recorded = None
        if recorded == json.loads(json.dumps(_manifest_options(options))):
            progress.stage(f"reusing the generated input {target}")
            return target.resolve()
    progress.stage(f"generating {rows:,} rows (seed {seed}) into {target}")
    generate(target, options, progress=lambda done, total: progress.fraction(done, total, "rows"))
    return target.resolve()


def run_statuses(log_path: Path) -> dict[str, str]:
    """The `<query> <status>` lines a build or baseline prints at its end."""
    statuses = {}
    if log_path.exists():
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            query, _, status = line.partition(" ")
            if query in QUERY_NAMES and status.strip():
                statuses[query] = status.strip()
    return statuses


def check_export(workdir: Path, export_build: str, oracle_results: Path, statuses: Mapping[str, str]) -> tuple[bool, str]:
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


def streaming_profile(build: str) -> Callable[[Path], list[dict]]:
    """The profile of a build that records progress (shared/progress_log.py) under
    WORKDIR/<build>/.../progress/: per streaming query and per part of Spark's `durationMs`
    (getBatch, queryPlanning, addBatch, walCommit, commitOffsets, triggerExecution, ...),
    per step inside a foreachBatch's addBatch (`<query>.steps.jsonl`: `addBatch.<step>`)
    and per phase of a run (`<name>.phases.jsonl`: Lambda's ingest, batch layer, ...): the
    sum over its micro-batches (or runs)."""

    def profile(workdir: Path) -> list[dict]:
        from shared.progress_log import read_progress

        rows = []
        for path in sorted((workdir / build).glob("**/progress/*.jsonl")):
            stem = path.name.removesuffix(".jsonl")
            query, _, kind = stem.partition(".")
            key, prefix = {"steps": ("stepsMs", "addBatch."), "phases": ("stepsMs", "")}.get(kind, ("durationMs", ""))
            sums: dict[str, float] = {}
            records = read_progress(path)
            for record in records:
                for part, ms in (record.get(key) or {}).items():
                    sums[prefix + part] = sums.get(prefix + part, 0) + ms
            rows += [{"query": query, "part": part, "ms": ms, "batches": len(records)}
                     for part, ms in sorted(sums.items())]
        return rows

    return profile


def spark_batch_profile(workdir: Path) -> list[dict]:
    """The baseline's own step timings (experiments/baselines/spark_batch.py)."""
    from experiments.baselines.spark_batch import PROFILE_FILE

    path = workdir / PROFILE_FILE
    if not path.exists():
        return []
    return [{"query": step["query"], "part": step["part"], "ms": step["ms"], "batches": ""}
            for step in json.loads(path.read_text(encoding="utf-8"))]


PROFILERS: dict[str, Callable[[Path], list[dict]]] = {"kappa": streaming_profile("kappa"),
                                                      LIVE: streaming_profile("kappa"),
                                                      "lambda": streaming_profile("lambda"),
                                                      "spark_batch": spark_batch_profile}


def _append_profile(path: Path, run_id: str, build: str, repeat: int, workdir: Path) -> None:
    rows = PROFILERS[build](workdir) if build in PROFILERS else []
    if rows:
        _append(path, PROFILE_COLUMNS, [{"run_id": run_id, "build": build, "repeat": repeat, **row} for row in rows])


# ---------------------------------------------------------------------------------------
# Metrics and profile CSVs (appended; the header once)
# ---------------------------------------------------------------------------------------

def _append(path: Path, columns: tuple[str, ...], rows: list[Mapping]) -> None:
    if path.exists() and path.stat().st_size:
        with open(path, encoding="utf-8", newline="") as handle:
            header = tuple(next(csv.reader(handle), ()))
        if header != columns:
            raise ValueError(f"{path} has the columns {list(header)}, not this version's {list(columns)}: "
                             "give another --metrics path")
    append_csv_rows(path, columns, [[_cell(row.get(c)) for c in columns] for row in rows])


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def read_metrics(path: Path, run_id: str | None = None) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if run_id is None or row["run_id"] == run_id]


# ---------------------------------------------------------------------------------------
# The live phase
# ---------------------------------------------------------------------------------------

@dataclass
class LiveOutcome:
    measurement: Measurement | None
    latencies: list[float]           # per measured unit, seconds (warm-up dropped)
    units: int
    uncovered: int
    problem: str = ""


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str, interval: float = 0.25,
             abort: Callable[[], str | None] = lambda: None) -> None:
    """Poll `condition` until it holds; TimeoutError after `deadline_s`, RuntimeError as
    soon as `abort()` names a reason."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        reason = abort()
        if reason:
            raise RuntimeError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {deadline_s:.0f} s")
        time.sleep(interval)


def unit_latencies(replay_dir: Path, commit_log: Path, queries: Iterable[str]) -> list[float | None]:
    """Per emitted unit, in order: the latest over `queries` of the first commit covering
    it, minus its intended emission time (None when some query never covered it)."""
    from experiments.harness.latency import read_emitted_units, unit_latencies as pair

    wanted = set(queries)
    units = read_emitted_units(replay_dir)
    by_unit: dict[int, dict[str, float | None]] = {}
    for row in pair(units, [c for c in read_commits(commit_log) if c.query in wanted]):
        by_unit.setdefault(row.unit, {})[row.query] = row.latency_s
    result = []
    for unit in units:
        values = by_unit.get(unit.unit, {})
        covered = set(values) == wanted and all(v is not None for v in values.values())
        result.append(max(values.values()) if covered else None)
    return result


def covered_by_all(commit_log: Path, queries: Iterable[str], last_seq: int) -> bool:
    highest: dict[str, int] = {}
    for commit in read_commits(commit_log):
        highest[commit.query] = max(highest.get(commit.query, -1), commit.max_seq)
    return all(highest.get(q, -1) >= last_seq for q in queries)


def _started(workdir: Path, plans: list[str]) -> bool:
    """Has every one of kappa's streaming queries started (Spark wrote its checkpoint's
    metadata, with the query id)?"""
    from shared import checkpoints

    return all(any(checkpoints.query_id(str(folder)) for folder in workdir.glob(f"kappa/*/checkpoints/{plan}"))
               for plan in plans)


def run_live(options: BenchOptions, live_input: Path, workdir: Path, queries: tuple[str, ...],
             progress: Progress) -> LiveOutcome:
    """kappa --follow on a landing directory, the replayer feeding it; see the module doc."""
    from experiments.harness.latency import read_emitted_units

    landing, replay_dir = workdir / "landing", workdir / "replay"
    landing.mkdir(parents=True)
    # The joined queries read the catalogue and the shipments from the log's folder: they are
    # reference data, in place before the stream starts (only sales files are replayed).
    for part in ("catalogue", "shipments"):
        if (live_input / part).is_dir():
            shutil.copytree(live_input / part, landing / part)
    command = python_command("-m", "experiments.cli", "run", "kappa", "--follow", "--input", str(landing),
                             "--workdir", str(workdir), "--interval", options.live_interval,
                             "--max-files-per-trigger", "1")   # one landed file, one micro-batch
    command += ["--master", options.master] if options.master else []
    kappa = MeasuredCommand(command, workdir / "run.log").start()
    plans = ["log", "window_revenue"] + (["fulfilment_pairs"] if (landing / "shipments").is_dir() else [])
    commit_log = commit_log_path(workdir, "kappa")
    exited = lambda: None if kappa.running else f"kappa exited early (see {workdir / 'run.log'})"
    try:
        progress.stage(f"{LIVE}: starting kappa --follow on {landing}")
        wait_for(lambda: _started(workdir, plans), 600, "kappa's streaming queries did not start", abort=exited)
        progress.stage(f"{LIVE}: replaying {live_input.name} at {options.live_rate:,.0f} lines/s "
                       f"({options.live_file_lines:,} lines a file) for about {options.live_seconds:.0f} s")
        replay = subprocess.run(
            python_command("-m", "experiments.cli", "--quiet", "replay", "--to", "landing", "--input", str(live_input),
                           "--landing", str(landing), "--rate", str(options.live_rate), "--log", str(replay_dir)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=options.live_seconds * 3 + 300)
        (workdir / "replay.log").write_text(replay.stdout, encoding="utf-8")
        if replay.returncode != 0:
            raise RuntimeError(f"the replay failed (exit {replay.returncode}), see {workdir / 'replay.log'}")
        last_seq = read_emitted_units(replay_dir)[-1].last_seq
        progress.stage(f"{LIVE}: replay done; waiting until every query's commits cover line {last_seq:,}")
        wait_for(lambda: covered_by_all(commit_log, queries, last_seq), options.live_drain_timeout_s,
                 "kappa's commits did not cover the whole replay", abort=exited)
        problem = ""
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as error:
        problem = str(error)
        progress.stage(f"{LIVE}: {problem}")
    kappa.signal_group(signal.SIGTERM)   # --follow stops between micro-batches, then exports
    try:
        measurement = kappa.wait(timeout=600)
    except TimeoutError as error:
        return LiveOutcome(None, [], 0, 0, f"{problem}; {error}" if problem else str(error))
    if not (replay_dir / "replay_log.csv").exists():
        return LiveOutcome(measurement, [], 0, 0, problem or "no replay log")
    per_unit = unit_latencies(replay_dir, commit_log, queries)
    measured = per_unit[options.warmup_units:]
    latencies = [v for v in measured if v is not None]
    return LiveOutcome(measurement, latencies, len(measured), len(measured) - len(latencies), problem)


# ---------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------

def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank (as the replayer's lag figures)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def environment(options: BenchOptions, input_dir: Path, raw_lines: int) -> dict:
    import duckdb
    import pyspark

    from shared.settings import LabSettings

    return {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                        "load_average_at_start": os.getloadavg()},
            "versions": {"python": platform.python_version(), "pyspark": pyspark.__version__,
                         "duckdb": duckdb.__version__, "psutil": psutil.__version__},
            "master": options.master or LabSettings.from_env().spark_master,
            "input": str(input_dir), "raw_lines": raw_lines,
            "options": {k: str(v) for k, v in options.__dict__.items()}}


def run_bench(options: BenchOptions, progress: Progress | None = None, out=print) -> int:
    """Everything `lab bench` does; returns the exit status (1 when an export differs or a
    run failed)."""
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
        input_dir = prepare_input(data, options.rows, options.seed, progress)
    inspect_input(input_dir)
    progress.stage(f"run {run_id}: oracle on {input_dir}")
    oracle = run_oracle(input_dir, work / "oracle", settings)
    oracle_results = results_dir(work / "oracle", "oracle")
    env = environment(options, input_dir, oracle.raw_lines)
    (metrics.parent / "runs").mkdir(parents=True, exist_ok=True)
    (metrics.parent / "runs" / f"{run_id}.json").write_text(json.dumps(env, indent=2), encoding="utf-8")

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
    for repeat in range(1, options.repeats + 1):
        for system in systems:
            workdir = work / f"{system}-r{repeat}"
            progress.stage(f"repeat {repeat}/{options.repeats}: {system} in its own process")
            started = _now()
            try:
                m = measure_command(system_command(system, input_dir, workdir, options.master), workdir / "run.log",
                                    timeout=options.timeout_s)
                identical, detail = check_export(workdir, system, oracle_results,
                                                 run_statuses(workdir / "run.log"))
                if m.exit_code != 0:
                    identical, detail = False, f"exit code {m.exit_code}, see {workdir / 'run.log'}"
            except TimeoutError as error:
                m, identical, detail = None, False, str(error)
            _append(metrics, METRICS_COLUMNS, [_metric_row(run_id, started, system, repeat, oracle.raw_lines,
                                                           "" if system == "duckdb" else master, m, identical, detail)])
            progress.stage(f"{system}: " + (f"{m.wall_s:.1f} s wall, {m.cpu_s:.1f} s CPU, {m.peak_rss_mb:,.0f} MiB peak, "
                                            if m else "") + ("identical to the oracle" if identical else f"NOT identical: {detail}"))
            _append_profile(profile, run_id, system, repeat, workdir)
        if options.runs_live:
            workdir = work / f"{LIVE}-r{repeat}"
            progress.stage(f"repeat {repeat}/{options.repeats}: {LIVE}")
            started = _now()
            live = run_live(options, live_input, workdir, live_queries, progress)
            if live.measurement is None or live.measurement.exit_code != 0:
                code = "no exit" if live.measurement is None else f"exit code {live.measurement.exit_code}"
                identical, detail = False, "; ".join(d for d in (live.problem, f"{code}, see {workdir / 'run.log'}") if d)
            elif live.problem:   # stopped before it had consumed the whole replay: its export is partial
                identical, detail = False, f"{live.problem}; stopped before the end of the replay, export not compared"
            else:
                identical, detail = check_export(workdir, "kappa", results_dir(work / "oracle-live", "oracle"),
                                                 run_statuses(workdir / "run.log"))
            row = _metric_row(run_id, started, LIVE, repeat, live_oracle.raw_lines, master, live.measurement,
                              identical, detail)
            row.update(live_rate_lps=options.live_rate, live_units=live.units, warmup_units=options.warmup_units,
                       uncovered_units=live.uncovered)
            if live.latencies:
                row.update(latency_p50_s=statistics.median(live.latencies),
                           latency_p95_s=percentile(live.latencies, 0.95), latency_max_s=max(live.latencies))
            _append(metrics, METRICS_COLUMNS, [row])
            _append_profile(profile, run_id, LIVE, repeat, workdir)
            progress.stage(f"{LIVE}: " + (f"latency median {statistics.median(live.latencies):.2f} s over "
                                          f"{len(live.latencies)} units" if live.latencies else "no latency measured")
                           + ("" if identical else f"; NOT identical: {detail}"))
    progress.stage("report (from the metrics CSV)")
    out(report(metrics, run_id, options, input_dir, work))
    rows = read_metrics(metrics, run_id)
    return 0 if rows and all(r["identical"] == "true" for r in rows) else 1


def _metric_row(run_id: str, started: str, build: str, repeat: int, input_lines: int, master: str,
                m: Measurement | None, identical: bool, detail: str) -> dict:
    row = {"run_id": run_id, "timestamp": started, "build": build, "repeat": repeat, "input_lines": input_lines,
           "master": master, "identical": identical, "detail": detail}
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
    numerator: str       # build whose value goes on top (or LIVE for the latency)
    denominator: str | None
    limit: float
    at_least: bool       # True: the figure must be >= limit; False: <= limit
    unit: str = "x"


TARGETS = (
    Target("F1", "Kappa drain throughput over Spark batch (batch time / kappa time)", "spark_batch", "kappa", 0.5, True),
    Target("F2", "Lambda full run time over Spark batch", "lambda", "spark_batch", 2.0, False),
    Target("F3", "DStream drain time over Spark batch", "dstream", "spark_batch", 4.0, False),
    Target("F4", "Kappa live latency (median over units, arrival to last query's commit)", LIVE, None, 1.0, False, " s"),
    Target("F5", "Spark batch time over DuckDB time", "spark_batch", "duckdb", 3.0, False),
)


@dataclass
class Spread:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Spread | None":
        return cls(statistics.median(values), min(values), max(values), len(values)) if values else None

    def text(self, digits: int = 2, unit: str = "") -> str:
        return f"{self.median:.{digits}f}{unit} ({self.low:.{digits}f}-{self.high:.{digits}f}, n={self.n})"


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
        return f"{target.name} {target.text}: not measured (needs successful {' and '.join(needs)} runs); target {bound}"
    met = spread.median >= target.limit if target.at_least else spread.median <= target.limit
    caveat = ""
    if target.denominator is None:
        live = [r for r in rows if r["build"] == target.numerator and r.get("exit_code") == "0"]
        uncovered, units = sum(int(r["uncovered_units"] or 0) for r in live), sum(int(r["live_units"] or 0) for r in live)
        if uncovered:
            caveat = (f" ({uncovered} of {units} measured units were never covered before the stop: kappa fell "
                      "behind the input, so this is a lower bound)")
    return (f"{target.name} {target.text}: {spread.text(2, target.unit)}{caveat}; target {bound}: "
            f"{'met' if met else 'NOT MET'}")


def build_table(rows: list[dict]) -> str:
    from experiments.harness.verify import format_text_table

    table = []
    for build in (*SYSTEMS, LIVE):
        mine = [r for r in rows if r["build"] == build]
        if not mine:
            continue
        ok = [r for r in mine if r.get("exit_code") == "0"]

        def spread(column: str, digits: int = 1) -> str:
            found = Spread.of([float(r[column]) for r in ok if r.get(column)])
            return "-" if found is None else found.text(digits)

        identical = sum(r["identical"] == "true" for r in mine)
        table.append([build, str(len(mine)), spread("wall_s"), spread("cpu_s"), spread("peak_rss_mb", 0),
                      f"{identical}/{len(mine)}",
                      spread("latency_p50_s", 2) if build == LIVE else ""])
    return format_text_table(["build", "runs", "wall s: median (min-max)", "CPU s", "peak RSS MiB",
                              "identical", "live latency p50 s"], table)


def report(metrics: Path, run_id: str, options: BenchOptions | None = None, input_dir: Path | None = None,
           work: Path | None = None) -> str:
    """The printed summary of one run, from the rows of `run_id` in the metrics CSV."""
    rows = read_metrics(metrics, run_id)
    if not rows:
        return f"no rows of run {run_id} in {metrics}"
    first = rows[0]
    master = next((r["master"] for r in rows if r["master"]), "none (DuckDB only)")
    lines = [f"lab bench run {run_id}: {int(first['input_lines']):,} raw input lines"
             + (f" ({input_dir})" if input_dir else "") + f", Spark master {master}, "
             f"{max(int(r['repeat']) for r in rows)} repeat(s)",
             "Wall time is each whole process: interpreter and JVM start, reading, computing, writing the export "
             "(builds and baselines alike, so ratios compare like with like). CPU s is user + system of the whole "
             "process tree (driver, JVM, Python workers); peak RSS is the tree's summed resident memory.",
             "", build_table(rows), ""]
    live = [r for r in rows if r["build"] == LIVE]
    if live:
        r = live[0]
        lines.append(f"Live phase ({LIVE}): kappa --follow fed by the replayer at {float(r['live_rate_lps']):,.0f} "
                     f"lines/s, one landed file per micro-batch; latency per unit = latest over queries of the first "
                     f"commit covering it - its intended emission time; first {r['warmup_units']} units dropped as "
                     f"warm-up; {LIVE} wall/CPU cover the whole live process (start, follow, stop, export).")
        profile = read_metrics(metrics.with_name("profile.csv"), run_id)
        for r in live:
            figures = (f"p50 {float(r['latency_p50_s']):.2f} s, p95 {float(r['latency_p95_s']):.2f} s, "
                       f"max {float(r['latency_max_s']):.2f} s" if r.get("latency_p50_s") else "no latency")
            lines.append(f"  repeat {r['repeat']}: live input of {int(r['input_lines']):,} raw lines; "
                         f"{r['live_units']} units measured ({r['uncovered_units']} never covered): {figures}")
            per_batch = [f"{p['query']} {float(p['ms']) / 1000 / int(p['batches']):.1f} s"
                         for p in profile if p["build"] == LIVE and p["repeat"] == r["repeat"]
                         and p["part"] == "triggerExecution" and p["batches"] and int(p["batches"])]
            if per_batch:
                arrival = (f"; a file landed every {options.live_file_lines / options.live_rate:.1f} s"
                           if options is not None else "")
                lines.append(f"    mean micro-batch time per streaming query (profile.csv): {', '.join(per_batch)}"
                             + arrival)
        lines.append("")
    lines += [target_line(rows, t) for t in TARGETS]
    lines.append("Ratios: per repeat, then the median of the repeats with (min-max).")
    differs = [r for r in rows if r["identical"] != "true"]
    lines.append("")
    if differs:
        for r in differs:
            lines.append(f"NOT IDENTICAL to the oracle: {r['build']} repeat {r['repeat']}: {r['detail']}")
    else:
        lines.append("every export is identical to the oracle's")
    notes = sorted({r["detail"] for r in rows if r["identical"] == "true" and r["detail"]})
    lines += [f"note: {n}" for n in notes]
    lines.append(f"metrics: {metrics} (run_id {run_id}); profile: {metrics.with_name('profile.csv')}"
                 " (Kappa's and Lambda's per-query durationMs sums, their foreachBatch steps and Lambda's phases;"
                 " DStream records no progress yet)")
    if work is not None:
        lines.append(f"work folders and logs: {work}")
    return "\n".join(lines)
