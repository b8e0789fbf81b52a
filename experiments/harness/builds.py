"""The build registry: every build, and the oracle as the reference, reached one way.

`lab run`, `lab verify` and `lab experiments` all call `BUILDS[name].run(spark, request)`
with one `RunRequest`; a build says which sources and modes it has, so a request it
cannot serve is refused before any Spark session starts. The experiments read the rest
from the entry: the architectures compared are the builds with a code folder; the live
steps follow those that follow, ready by `follow_ready`; reprocessing and the late-data
correction run the commands an entry names; the code-size step counts its folder; the
charts draw it in its colour. Adding a build is one entry here, its own package and its
folder in pyproject.toml (docs/builds.md, "Adding a query or a build").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.catalogue import QUERY_NAMES
from shared.settings import DEFAULT_DRAIN_BATCH_MB, DEFAULT_KAFKA_BOOTSTRAP, WorkloadSettings


@dataclass(frozen=True)
class RunRequest:
    input_dir: str
    workdir: str
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    fresh: bool = False
    source: str = "files"  # "files" or "kafka"
    follow: bool = False  # keep consuming until should_stop()
    interval: str = "5 seconds"  # processing-time trigger when following
    should_stop: Callable[[], bool] = lambda: False
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    kafka_topic: str = "sales"
    version: str | None = None  # kappa: the version to run (default: the serving one, or v1)
    queries: tuple[str, ...] | None = None  # default: the whole catalogue
    max_files_per_trigger: int | None = None  # None: whole files up to drain_batch_mb per micro-batch
    drain_batch_mb: int = DEFAULT_DRAIN_BATCH_MB
    progress: Callable[[int, int], None] | None = None  # (lines done, lines known) on long runs
    report: Callable[[str], None] = lambda message: None  # a stage worth a line (a Lambda handoff)
    batch_every: str = "60 seconds"  # lambda --follow: the batch layer's schedule


@dataclass(frozen=True)
class Build:
    name: str
    summary: str
    run: Callable[[object, RunRequest], dict[str, str]]  # (spark or None, request) -> query -> status
    uses_spark: bool = True
    sources: tuple[str, ...] = ("files",)
    follows: bool = False
    folder: str | None = None  # its code, in the repository; None: not an architecture compared
    package: str | None = None  # the name that folder is imported as
    colour: str = "#17becf"  # in every chart
    # `lab run BUILD --follow` has started what the live steps measure: (workdir, landing) -> bool
    follow_ready: Callable[[Path, Path], bool] | None = None
    follow_notes: Callable[[], str] = lambda: ""  # what its live figures mean (a call: may import the build)
    # `lab` arguments that reprocess into a new version (a logic change), and what they do
    reprocess: Callable[[str], list[str]] | None = None
    reprocess_summary: str = ""
    # `lab` arguments that recompute the serving version from the whole input in place: a
    # correction of late data, measured by the late step after the build's own figures
    correct_late: tuple[str, ...] | None = None
    reports_handoffs: bool = False  # its follow log announces the batch layer's handoffs
    # `lab experiments --source kafka`: its drains read the topic (Kappa: the log is the architecture)
    drains_kafka: bool = False

    def check(self, request: RunRequest) -> None:
        """Refuse what this build cannot do, before anything starts."""
        if request.source not in self.sources:
            raise ValueError(f"the {self.name} build reads {' or '.join(self.sources)}, not {request.source}")
        if request.follow and not self.follows:
            raise ValueError(f"the {self.name} build has no --follow mode")


def kappa_config(request: RunRequest):
    from kappa.app import KappaConfig
    from kappa.versions import DEFAULT_VERSION, serving_version

    return KappaConfig(
        request.input_dir,
        request.workdir,
        settings=request.settings,
        source=request.source,
        version=request.version or serving_version(request.workdir) or DEFAULT_VERSION,
        kafka_bootstrap=request.kafka_bootstrap,
        kafka_topic=request.kafka_topic,
        max_files_per_trigger=request.max_files_per_trigger,
        batch_mb=request.drain_batch_mb,
        queries=request.queries or QUERY_NAMES,
    )


def _run_kappa(spark, request: RunRequest) -> dict[str, str]:
    from dataclasses import replace

    from kappa import app

    config = kappa_config(request)
    if request.follow:
        return app.follow(
            spark, replace(config, processing_interval=request.interval), request.should_stop, fresh=request.fresh
        )
    return app.run(spark, config, fresh=request.fresh)


def _run_lambda(spark, request: RunRequest) -> dict[str, str]:
    from lambda_arch.app import BatchSchedule, LambdaConfig, follow, run

    config = LambdaConfig(
        request.input_dir,
        request.workdir,
        settings=request.settings,
        queries=request.queries or QUERY_NAMES,
        batch_mb=request.drain_batch_mb,
        max_files_per_trigger=request.max_files_per_trigger,
        source=request.source,
        kafka_bootstrap=request.kafka_bootstrap,
        kafka_topic=request.kafka_topic,
    )
    if request.follow:
        return follow(
            spark,
            config,
            request.should_stop,
            BatchSchedule.parse(request.batch_every),
            interval=request.interval,
            fresh=request.fresh,
            report=request.report,
        )
    return run(spark, config, fresh=request.fresh)


def _run_dstream(spark, request: RunRequest) -> dict[str, str]:
    from legacy_dstream.app import run
    from legacy_dstream.config import DStreamConfig

    config = DStreamConfig(
        request.input_dir,
        request.workdir,
        settings=request.settings,
        queries=request.queries or QUERY_NAMES,
        files_per_batch=request.max_files_per_trigger,
        batch_mb=request.drain_batch_mb,
    )
    return run(
        spark,
        config,
        fresh=request.fresh,
        progress=request.progress,
        follow=request.follow,
        should_stop=request.should_stop,
    )


def _run_oracle(_spark, request: RunRequest) -> dict[str, str]:
    from experiments.reference.oracle import run_oracle

    result = run_oracle(request.input_dir, request.workdir, request.settings)
    return {
        **{query: "written" for query in result.results},
        **{query: "not applicable: " + why for query, why in result.not_applicable.items()},
    }


def checkpoint_started(folder: Path) -> bool:
    from shared import checkpoints

    return bool(checkpoints.query_id(str(folder)))


def _kappa_ready(workdir: Path, landing: Path) -> bool:
    plans = ["log", "window_revenue"] + (["fulfilment_pairs"] if (landing / "shipments").is_dir() else [])
    return all(
        any(checkpoint_started(folder) for folder in workdir.glob(f"kappa/*/checkpoints/{plan}")) for plan in plans
    )


def _lambda_ready(workdir: Path, _landing: Path) -> bool:
    return (workdir / "lambda" / "follow.pid").exists()


def _dstream_ready(workdir: Path, landing: Path) -> bool:
    from legacy_dstream.config import DStreamConfig

    # its first batch has run: that one carries the start-up (Python workers, first jobs)
    return DStreamConfig(str(landing), str(workdir)).ready_file.exists()


def _dstream_notes() -> str:
    from legacy_dstream.config import FOLLOW_BATCH_SECONDS

    return f"{FOLLOW_BATCH_SECONDS:g} s batches (--interval does not apply to DStream)"


BUILDS: dict[str, Build] = {
    build.name: build
    for build in (
        Build(
            "kappa",
            "one Structured Streaming application over a replayable log",
            _run_kappa,
            sources=("files", "kafka"),
            follows=True,
            folder="kappa",
            package="kappa",
            colour="#1f77b4",
            follow_ready=_kappa_ready,
            drains_kafka=True,
            reprocess=lambda version: ["kappa", "replay", "--version", version],
            reprocess_summary="lab kappa replay: every query from the log's start into new tables, then the "
            "cut-over and the export",
        ),
        Build(
            "lambda",
            "master dataset, batch, speed and serving layers",
            _run_lambda,
            sources=("files", "kafka"),
            follows=True,
            folder="lambda",
            package="lambda_arch",
            colour="#ff7f0e",
            follow_ready=_lambda_ready,
            follow_notes=lambda: "served results (batch view + realtime view)",
            reprocess=lambda version: ["lambda", "batch", "--version", version],
            reprocess_summary="lab lambda batch: every batch view of a new view version from the whole master "
            "dataset, then published and the export",
            correct_late=("lambda", "batch", "--recompute"),
            reports_handoffs=True,
        ),
        Build(
            "dstream",
            "the legacy DStream/RDD application",
            _run_dstream,
            follows=True,
            folder="legacy_dstream",
            package="legacy_dstream",
            colour="#2ca02c",
            follow_ready=_dstream_ready,
            follow_notes=_dstream_notes,
        ),
        Build("oracle", "the reference: plain Python parsing and pandas, no Spark", _run_oracle, uses_spark=False),
    )
}
SPARK_BUILDS: tuple[str, ...] = tuple(name for name, build in BUILDS.items() if build.uses_spark)
# The architectures the experiments compare: every build with code of its own, in registry order.
ARCHITECTURES: tuple[str, ...] = tuple(name for name, build in BUILDS.items() if build.folder)
FOLLOWING_BUILDS: tuple[str, ...] = tuple(name for name in ARCHITECTURES if BUILDS[name].follows)
REPROCESSING_BUILDS: tuple[str, ...] = tuple(name for name in ARCHITECTURES if BUILDS[name].reprocess)
