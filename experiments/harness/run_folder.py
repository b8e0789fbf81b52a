"""One `lab experiments` run folder, `reports/<run-id>/`, and its tidy `metrics.csv`.

Everything the report shows is read back from this folder alone:

- `environment.json`: machine, Spark master, source, versions, settings, profile, load
  average at the start (and at the end, added by the last step), the git commit.
- `metrics.csv`: one row per measurement (a tidy, long table), appended by every step:
  `METRICS_COLUMNS` below. `value` is a number (or empty when there is none, e.g. a query
  that is not applicable); `unit` says what it counts; `detail` says how or why in words.
- `latency/<build>-r<repeat>.csv`: one row per emitted unit and query of a live run (the
  charts' points: CDF, latency over time); its figures are rows of metrics.csv.
- `throughput/<build>-r<repeat>-<probe>.csv`: the same per-unit rows of a throughput probe
  (what its figures and verdicts were computed from).
- `replay/<build>-r<repeat>.json`: the replayer's summary of that run (its schedule).
- `results/<build>/`: the last drain repeat's results exports, so a reader can diff them.
- `logs/`: every measured process's output.

Metric names (`metric` column) and the steps that write them:

| step | metric | unit | per |
|---|---|---|---|
| drain | wall_s, cpu_s, peak_rss_mb, exit_code | s, s, MiB, code | system, repeat |
| drain, latency | equivalence | rows differing (0 = identical; empty = not applicable) | build, query, repeat |
| drain | watermark_dropped_rows | rows (Spark's numRowsDroppedByWatermark) | build (kappa), query, repeat |
| drain | raw_lines, valid_lines, quarantined_lines, balanced | lines / 1 or 0 | build, repeat |
| drain | quarantine | lines (detail = reason) | oracle |
| drain | profile_ms | ms (detail = streaming query part) | system, query, repeat |
| latency | latency_p50_s, latency_p95_s, latency_p99_s, latency_max_s | s | build, query (or `all`), rate, repeat |
| latency | units_measured, units_warmup, units_uncovered | units | build, query, rate, repeat |
| latency | commits_measured, commit_lag_p50_s, commit_lag_trend_s_per_min | commits, s, s of lag per min | build, `all`, rate, repeat |
| latency | wall_s, cpu_s, peak_rss_mb, exit_code | as above | build, repeat (the follow process) |
| latency | replayer_cpu_s, replay_lag_max_s | s | build, repeat |
| latency | handoff_at | UTC epoch s (detail = master version) | lambda, repeat |
| throughput | latency_p50_s ... units_uncovered, commits_measured ... commit_lag_trend_s_per_min | as in latency | build, `all`, probed rate, repeat |
| throughput | bounded | 1 bounded, 0 not, empty not judged (detail = why) | build, `all`, probed rate, repeat |
| throughput | replayer_cpu_s, replay_lag_max_s | s | build, query `live probe pass`, repeat |
| throughput | sustainable_lps, unbounded_lps | lines/s (detail = the rates tried) | build, repeat |
| throughput | wall_s, cpu_s, peak_rss_mb, exit_code | as above | build, probe (query `ramp`, `bisect-N`), repeat |
| reprocessing | initial_wall_s, initial_cpu_s | s (the build's first run) | build, input size, repeat |
| reprocessing | wall_s, cpu_s, peak_rss_mb, exit_code | as above (the recompute) | build, input size, repeat |
| reprocessing | catch_up_s | s inside `lab kappa replay`, JVM start excluded | kappa, input size, repeat |
| reprocessing | equivalence | rows differing (city_revenue after the recompute) | build, input size, repeat |
| recovery | first_commit_s, replay_end_s, kill_at_s, restart_at_s | s since the replay started | build, repeat |
| recovery | first_commit_after_restart_s, catch_up_s | s since the restart | build, repeat |
| recovery | lost_lines, duplicated_lines | order lines (query = the query counted, or line_accounting) | build, repeat |
| late | late_lines, valid_lines | lines of the late input | build `input` |
| late | counted_lines, window_lines_missing, window_lines_extra, window_rows_differing (+ _after_batch) | lines, (line, window) pairs, rows | build, repeat |
| late | exit_code, equivalence, watermark_dropped_rows | as above (no time or cost: the builds run at the same time) | build, repeat |
| code_size | code_lines, doc_lines, statements | lines, statements (query = build-specific or shared) | build (and `shared`: all of it) |
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.atomic import write_text_atomic
from shared.commit_log import append_csv_rows

METRICS_FILE = "metrics.csv"
ENVIRONMENT_FILE = "environment.json"
METRICS_COLUMNS = (
    "run_id",
    "timestamp",
    "step",
    "build",
    "query",
    "repeat",
    "input_lines",
    "rate_lps",
    "metric",
    "value",
    "unit",
    "detail",
)
ALL_QUERIES = "all"  # the `query` of a per-unit figure over every query (the latest of them)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Metric:
    """One row of metrics.csv (run_id and timestamp are added when it is appended)."""

    step: str
    build: str
    metric: str
    value: float | int | None
    unit: str
    query: str = ""
    repeat: int | str = ""
    input_lines: int | str = ""
    rate_lps: float | str = ""
    detail: str = ""


def metric_cell(value) -> str:
    """How every measuring command writes a value: booleans 1/0, floats to 6 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e9 else f"{value:.3f}"
    return str(value)


@dataclass
class RunFolder:
    path: Path
    run_id: str = field(init=False)

    def __post_init__(self):
        self.path = Path(self.path)
        self.run_id = self.path.name

    @classmethod
    def create(cls, reports_root: Path, profile: str) -> RunFolder:
        run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{profile}-{uuid.uuid4().hex[:4]}"
        path = Path(reports_root) / run_id
        path.mkdir(parents=True, exist_ok=False)
        return cls(path)

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def environment_path(self) -> Path:
        return self.path / ENVIRONMENT_FILE

    def latency_path(self, build: str, repeat: int) -> Path:
        return self.path / "latency" / f"{build}-r{repeat}.csv"

    def probe_units_path(self, build: str, repeat: int, label: str) -> Path:
        """The per-unit latencies of one throughput probe (what its figures were computed from)."""
        return self.path / "throughput" / f"{build}-r{repeat}-{label}.csv"

    def replay_summary_path(self, build: str, repeat: int) -> Path:
        return self.path / "replay" / f"{build}-r{repeat}.json"

    def log_path(self, name: str) -> Path:
        return self.path / "logs" / f"{name}.log"

    def keep_log(self, source: Path, name: str) -> Path:
        """A measured process's log, copied into the run folder (work folders may be removed)."""
        target = self.log_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).exists():
            shutil.copy(source, target)
        return target

    def append(self, metrics: Iterable[Metric]) -> None:
        """Append rows under one header (the header once, when the file is new)."""
        now = utc_now()
        append_rows(
            self.metrics_path,
            METRICS_COLUMNS,
            [{"run_id": self.run_id, "timestamp": now, **asdict(m)} for m in metrics],
        )

    def metrics(self) -> list[dict]:
        return read_metrics(self.metrics_path)

    def environment(self) -> dict:
        return json.loads(self.environment_path.read_text(encoding="utf-8"))

    def write_environment(self, environment: Mapping) -> None:
        write_environment(self.environment_path, environment)

    def update_environment(self, **fields) -> None:
        environment = self.environment() if self.environment_path.exists() else {}
        environment.update(fields)
        self.write_environment(environment)


def append_rows(path: Path, columns: tuple[str, ...], rows: Iterable[Mapping]) -> None:
    """The one writer of a metrics CSV (every run folder's, `lab bench`'s included): rows
    appended under one header, written once when the file is new; a file with other columns
    is refused, never mixed."""
    cells = [[metric_cell(row.get(c)) for c in columns] for row in rows]
    if not cells:
        return
    if path.exists() and path.stat().st_size:
        with open(path, encoding="utf-8", newline="") as handle:
            header = tuple(next(csv.reader(handle), ()))
        if header != columns:
            raise ValueError(f"{path} has the columns {list(header)}, not this version's {list(columns)}")
    append_csv_rows(path, columns, cells)


def write_environment(path: Path, environment: Mapping) -> None:
    """The one writer of an environment file (every run folder's): JSON, with
    paths and other values written as text."""
    write_text_atomic(path, json.dumps(environment, indent=2, default=str) + "\n")


def read_metrics(path: Path, run_id: str | None = None) -> list[dict]:
    """The one reader of a metrics CSV: its rows as dicts of text (one run's, given `run_id`)."""
    if not Path(path).exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if run_id is None or row["run_id"] == run_id]


def number(row: Mapping, column: str = "value") -> float | None:
    text = row.get(column, "")
    return float(text) if text not in ("", None) else None


# ---------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------


def _command_output(command: list[str], stderr: bool = False) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        text = done.stderr if stderr else done.stdout
        return text.strip().splitlines()[0] if text.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def environment(profile: Mapping, source: str, master: str, input_dir: str | None) -> dict:
    """What a reader needs to know to trust or rerun the numbers."""
    import psutil

    from shared.settings import LabSettings

    lab = LabSettings.from_env()
    repository = Path(__file__).resolve().parents[2]
    commit = _command_output(["git", "-C", str(repository), "rev-parse", "HEAD"])
    dirty = _command_output(["git", "-C", str(repository), "status", "--porcelain", "--untracked-files=no"])
    return {
        "started_utc": utc_now(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "spark_master": master,
        "source": source,
        "input": input_dir or "generated (see profile)",
        "versions": {
            "python": platform.python_version(),
            **{
                name: _version(name)
                for name in ("pyspark", "delta-spark", "duckdb", "pandas", "psutil", "matplotlib", "jinja2")
            },
            "java": _command_output(["java", "-version"], stderr=True),
        },
        "git_commit": commit + (" (with uncommitted changes)" if dirty not in ("", "unknown") else ""),
        "settings": {**{k: v for k, v in asdict(lab).items() if k != "workload"}, **asdict(lab.workload)},
        "profile": dict(profile),
    }
