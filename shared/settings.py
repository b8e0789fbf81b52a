"""The lab's settings, read in one place and passed around as immutable values.

Every `LAB_*` environment variable is read here and nowhere else: the edges of the lab
(the `lab` command line, `lab experiments`) call `LabSettings.from_env()` or
`WorkloadSettings.from_env()` once and hand the values down; library code takes them as
arguments (only shared/spark.py, given no settings, asks `LabSettings.from_env()` itself,
so a bare `create_spark_session()` still honours LAB_SPARK_MASTER and the others) and
never looks at `os.environ` for them. `ENVIRONMENT` is the table of variables
(name, default, meaning); `lab --help` prints it (`settings_help`), so the help cannot
drift from what is read. Shell scripts (scripts/*.sh) read their own variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

HEADER = ("Order ID", "Product", "Quantity Ordered", "Price Each", "Order Date", "Purchase Address")
CATALOGUE_COLUMNS = ("product", "category", "unit_cost", "list_price")
SHIPMENT_COLUMNS = ("order_id", "product", "ship_time", "carrier")
UNCATALOGUED = "(uncatalogued)"
# Quarantine reasons in the order docs/data-rules.md applies them: the first that applies wins.
QUARANTINE_REASONS = (
    "not_utf8",
    "too_long",
    "blank",
    "header",
    "field_count",
    "missing_field",
    "bad_quantity",
    "bad_price",
    "bad_date",
    "bad_address",
)


@dataclass(frozen=True)
class WorkloadSettings:
    window_seconds: int = 3600  # window_revenue: 1 h windows ...
    slide_seconds: int = 1800  # ... sliding by 30 min
    watermark_seconds: int = 2 * 3600  # late lines beyond this are dropped by event-time builds
    ship_within_seconds: int = 72 * 3600  # fulfilment: stream-stream join time bound
    shipment_watermark_seconds: int = 2 * 3600
    # The join's own watermark on order lines: Spark drops a join input row older than the
    # (global) watermark, so the join waits as long as a shipment may take; lines up to
    # 72 h late still find their shipments, and state stays bounded.
    join_order_watermark_seconds: int = 72 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkloadSettings:
        """Defaults overridden by LAB_WINDOW_SECONDS, LAB_SLIDE_SECONDS, LAB_WATERMARK_SECONDS."""
        return replace(cls(), **_read(env, _WORKLOAD_FIELDS)).validated()

    def validated(self) -> WorkloadSettings:
        if min(self.window_seconds, self.slide_seconds, self.ship_within_seconds) <= 0:
            raise ValueError("window, slide and ship-within durations must be positive")
        if self.window_seconds % self.slide_seconds:
            raise ValueError("the window length must be a multiple of the slide")
        if min(self.watermark_seconds, self.shipment_watermark_seconds, self.join_order_watermark_seconds) < 0:
            raise ValueError("watermarks cannot be negative")
        return self


DEFAULT_SPARK_MASTER = "local[2]"
# One shuffle partition per core of the default master: both cores busy, and each stateful
# operator keeps one state store per partition, which every micro-batch loads and commits.
# Kappa following at 50-200 lines/s, every query visible: p50 12-15 s with 4, 8-9 s with 2
# (docs/spark-settings.md); drains of 200,000 lines no slower.
DEFAULT_SHUFFLE_PARTITIONS = 2
# A drain reads the log in micro-batches of about this many bytes (whole files): large
# enough that per-batch costs (planning, state and Delta commits) are paid rarely, small
# enough to sit comfortably in the driver's memory (1 GiB at least; a cached batch spills
# to disk beyond it). 64 against 32 on 1,000,000 lines (2 batches, not 3), same day:
# Lambda 95.0 -> 74.8 s, Kappa 153.0 -> 127.9 s (docs/spark-settings.md, "micro-batch size").
DEFAULT_DRAIN_BATCH_MB = 64
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"  # the broker `make kafka-up` starts
# A lab JVM that runs to its end (a drain, a batch run, a replay, a baseline) compiles
# with the client compiler (C1) only: it lives seconds to a minute, and on this
# 2-core machine the server compiler's (C2) threads took CPU from the work for most of that
# time. Same input, the two settings taking turns, 2 runs each: drains of 2,000 lines, kappa
# 34.7 -> 27.0 s, spark_batch 14.4 -> 11.8 s, lambda 23.3 -> 17.3 s, dstream 12.2 -> 10.6 s;
# of 50,000 lines, kappa 39.7 -> 29.7 s, spark_batch 17.6 -> 13.1 s. A long-lived JVM (a
# `--follow` service, the test session) keeps the JVM's default (C1, then C2 for hot code):
# once warm it is faster. With C1 only, `standard`'s live passes 2-3 had Kappa's p50 at
# 15.6-19.5 s against 11.2-14.1 s, and three test modules took 159-164 s against 139-141 s.
# `-XX:TieredStopAtLevel=4` restores the default for every process.
DEFAULT_BATCH_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"
# ...but only while its input is small: a drain over more than this many MB of sales files
# lives long enough for C2 to pay, and keeps the JVM's defaults. Same input, the settings
# taking turns (2026-12-07, docs/spark-settings.md): at 200,000 lines (17 MB) C1 only and the
# defaults were within the noise of each other (kappa 75.1 / 72.1 s against 71.6 s, lambda
# 56.7 / 45.8 against 50.4, spark_batch 38.0 / 30.7 against 38.7), the defaults with more CPU
# and memory; at 1,000,000 lines (about 83 MB) the defaults won (kappa 112.9 -> 98.8 s,
# lambda 79.8 -> 60.6 s); at 50,000, C1 (kappa 39.7 -> 29.7 s).
DEFAULT_BATCH_JVM_MAX_MB = 48
DEFAULT_COMPACT_EVERY_BATCHES = 50
_REPO = Path(__file__).resolve().parent.parent


def machine_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_driver_memory() -> str:
    """A sixth of the machine's memory, between 1 and 8 GiB (Spark's own default is 1 GiB
    whatever the machine). A sixth leaves room for the tests' and the harness's other JVMs,
    the Python workers and the page cache; the heap is only committed as it is used."""
    total = machine_memory_bytes()
    if total is None:
        return "1g"
    return f"{max(1, min(8, total // 6 // 2**30))}g"


def default_lab_home() -> Path:
    """<repo>/.lab in a checkout; ~/.cache/lambda-kappa-lab for an installed copy."""
    if (_REPO / "pyproject.toml").exists():
        return _REPO / ".lab"
    return Path.home() / ".cache" / "lambda-kappa-lab"


@dataclass(frozen=True)
class LabSettings:
    """Where and how the lab runs (the workload's own settings are in `workload`)."""

    spark_master: str = DEFAULT_SPARK_MASTER
    shuffle_partitions: int = DEFAULT_SHUFFLE_PARTITIONS
    driver_memory: str = field(default_factory=default_driver_memory)
    drain_batch_mb: int = DEFAULT_DRAIN_BATCH_MB
    spark_ui: bool = False
    batch_jvm_options: str = DEFAULT_BATCH_JVM_OPTIONS
    batch_jvm_max_mb: int = DEFAULT_BATCH_JVM_MAX_MB
    compact_every_batches: int = DEFAULT_COMPACT_EVERY_BATCHES
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    home: Path = field(default_factory=default_lab_home)  # resolved jars, broker and cluster state
    workload: WorkloadSettings = field(default_factory=WorkloadSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LabSettings:
        """Defaults overridden by every variable of `ENVIRONMENT` that is set and not empty."""
        lab_fields = {f.name for f in fields(cls)} - {"workload"}
        return cls(**_read(env, lab_fields), workload=WorkloadSettings.from_env(env))


@dataclass(frozen=True)
class EnvironmentVariable:
    name: str
    setting: str  # the LabSettings or WorkloadSettings field it sets
    default: str  # as users read it
    meaning: str
    parse: Callable[[str], object]


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be a positive whole number, got {text!r}")
    return value


def _memory_size(text: str) -> str:
    """A JVM memory size such as 4g or 2048m."""
    if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]", text.strip()):
        raise ValueError(f"must be a size such as 4g or 2048m, got {text!r}")
    return text.strip().lower()


_WORKLOAD_DEFAULTS = WorkloadSettings()
ENVIRONMENT: tuple[EnvironmentVariable, ...] = (
    EnvironmentVariable(
        "LAB_SPARK_MASTER", "spark_master", DEFAULT_SPARK_MASTER, "Spark master URL (--master overrides it)", str
    ),
    EnvironmentVariable(
        "LAB_SHUFFLE_PARTITIONS",
        "shuffle_partitions",
        str(DEFAULT_SHUFFLE_PARTITIONS),
        "spark.sql.shuffle.partitions",
        _positive_int,
    ),
    EnvironmentVariable(
        "LAB_DRIVER_MEMORY",
        "driver_memory",
        "1/6 of RAM, 1g-8g",
        "spark.driver.memory (the driver's heap; in local mode it holds the executors too)",
        _memory_size,
    ),
    EnvironmentVariable(
        "LAB_DRAIN_BATCH_MB",
        "drain_batch_mb",
        str(DEFAULT_DRAIN_BATCH_MB),
        "a drain's micro-batch size: whole files up to about this many MB",
        _positive_int,
    ),
    EnvironmentVariable("LAB_SPARK_UI", "spark_ui", "0", "1 turns the Spark web UI on", lambda text: text == "1"),
    EnvironmentVariable(
        "LAB_BATCH_JVM_OPTIONS",
        "batch_jvm_options",
        DEFAULT_BATCH_JVM_OPTIONS,
        "options of the lab JVMs that run to their end, driver and executors (a --follow service "
        "and the test session keep the JVM's defaults; -XX:TieredStopAtLevel=4 restores them)",
        str,
    ),
    EnvironmentVariable(
        "LAB_BATCH_JVM_MAX_MB",
        "batch_jvm_max_mb",
        str(DEFAULT_BATCH_JVM_MAX_MB),
        "a drain or batch baseline over more MB of sales files than this keeps the JVM's defaults "
        "instead of LAB_BATCH_JVM_OPTIONS (it lives long enough for the server compiler to pay)",
        _positive_int,
    ),
    EnvironmentVariable(
        "LAB_COMPACT_EVERY_BATCHES",
        "compact_every_batches",
        str(DEFAULT_COMPACT_EVERY_BATCHES),
        "every this many micro-batches a build's writer compacts the Delta tables it appends to "
        "(Kappa) or deletes its older published results (DStream): shared/table_upkeep.py",
        _positive_int,
    ),
    EnvironmentVariable(
        "LAB_KAFKA_BOOTSTRAP",
        "kafka_bootstrap",
        DEFAULT_KAFKA_BOOTSTRAP,
        "Kafka bootstrap servers (--bootstrap overrides it)",
        str,
    ),
    EnvironmentVariable(
        "LAB_HOME",
        "home",
        ".lab/",
        "where resolved jars, broker and cluster state live",
        lambda text: Path(text).resolve(),
    ),
    EnvironmentVariable(
        "LAB_WINDOW_SECONDS",
        "window_seconds",
        str(_WORKLOAD_DEFAULTS.window_seconds),
        "window_revenue window length",
        int,
    ),
    EnvironmentVariable(
        "LAB_SLIDE_SECONDS", "slide_seconds", str(_WORKLOAD_DEFAULTS.slide_seconds), "window_revenue slide", int
    ),
    EnvironmentVariable(
        "LAB_WATERMARK_SECONDS",
        "watermark_seconds",
        str(_WORKLOAD_DEFAULTS.watermark_seconds),
        "event-time watermark (`lab generate` uses it too)",
        int,
    ),
)
_WORKLOAD_FIELDS = {f.name for f in fields(WorkloadSettings)}


def _read(env: Mapping[str, str] | None, settings: set[str]) -> dict[str, Any]:  # Any: each field its own type
    """Parsed values of the variables that set one of `settings` (unset or empty: default)."""
    env = os.environ if env is None else env
    values = {}
    for variable in ENVIRONMENT:
        text = env.get(variable.name)
        if variable.setting in settings and text:
            try:
                values[variable.setting] = variable.parse(text)
            except ValueError as error:
                raise ValueError(f"{variable.name}={text!r}: {error}") from None
    return values


def settings_help() -> str:
    """The table of variables, for `lab --help` (one line each, defaults included)."""
    width = max(len(variable.name) for variable in ENVIRONMENT)
    default_width = max(len(variable.default) for variable in ENVIRONMENT)
    lines = ["settings (environment variables; unset or empty means the default):"]
    lines += [f"  {v.name:<{width}}  {v.default:<{default_width}}  {v.meaning}" for v in ENVIRONMENT]
    return "\n".join(lines) + "\n"
