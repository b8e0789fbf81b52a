"""The build registry: every build, and the oracle as the reference, reached one way.

`lab run`, `lab verify` and `lab experiments` all call `BUILDS[name].run(spark, request)`
with one `RunRequest`; a build says which sources and modes it has, so a request it
cannot serve is refused before any Spark session starts. Adding a build is one entry
here plus its own package (see docs/builds.md, "Adding a query or a build").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from shared.export import QUERY_NAMES
from shared.settings import DEFAULT_DRAIN_BATCH_MB, DEFAULT_KAFKA_BOOTSTRAP, WorkloadSettings


@dataclass(frozen=True)
class RunRequest:
    input_dir: str
    workdir: str
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    fresh: bool = False
    source: str = "files"                  # "files" or "kafka"
    follow: bool = False                   # keep consuming until should_stop()
    interval: str = "5 seconds"            # processing-time trigger when following
    should_stop: Callable[[], bool] = lambda: False
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    kafka_topic: str = "sales"
    version: str | None = None             # kappa: the version to run (default: the serving one, or v1)
    queries: tuple[str, ...] | None = None  # default: the whole catalogue
    max_files_per_trigger: int | None = None  # None: whole files up to drain_batch_mb per micro-batch
    drain_batch_mb: int = DEFAULT_DRAIN_BATCH_MB
    progress: Callable[[int, int], None] | None = None  # (lines done, lines known) on long runs
    report: Callable[[str], None] = lambda message: None  # a stage worth a line (a Lambda handoff)
    batch_every: str = "60 seconds"        # lambda --follow: the batch layer's schedule


@dataclass(frozen=True)
class Build:
    name: str
    summary: str
    run: Callable[[object, RunRequest], dict[str, str]]  # (spark or None, request) -> query -> status
    uses_spark: bool = True
    sources: tuple[str, ...] = ("files",)
    follows: bool = False

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
        request.input_dir, request.workdir, settings=request.settings, source=request.source,
        version=request.version or serving_version(request.workdir) or DEFAULT_VERSION,
        kafka_bootstrap=request.kafka_bootstrap, kafka_topic=request.kafka_topic,
        max_files_per_trigger=request.max_files_per_trigger, batch_mb=request.drain_batch_mb,
        queries=request.queries or QUERY_NAMES)


def _run_kappa(spark, request: RunRequest) -> dict[str, str]:
    from dataclasses import replace

    from kappa import app

    config = kappa_config(request)
    if request.follow:
        return app.follow(spark, replace(config, processing_interval=request.interval), request.should_stop,
                          fresh=request.fresh)
    return app.run(spark, config, fresh=request.fresh)


def _run_lambda(spark, request: RunRequest) -> dict[str, str]:
    from lambda_arch.app import BatchSchedule, LambdaConfig, follow, run

    config = LambdaConfig(request.input_dir, request.workdir, settings=request.settings,
                          queries=request.queries or QUERY_NAMES, batch_mb=request.drain_batch_mb,
                          max_files_per_trigger=request.max_files_per_trigger, source=request.source,
                          kafka_bootstrap=request.kafka_bootstrap, kafka_topic=request.kafka_topic)
    if request.follow:
        return follow(spark, config, request.should_stop, BatchSchedule.parse(request.batch_every),
                      interval=request.interval, fresh=request.fresh, report=request.report)
    return run(spark, config, fresh=request.fresh)


def _run_dstream(spark, request: RunRequest) -> dict[str, str]:
    from legacy_dstream.app import DStreamConfig, run

    config = DStreamConfig(request.input_dir, request.workdir, settings=request.settings,
                           queries=request.queries or QUERY_NAMES, files_per_batch=request.max_files_per_trigger,
                           batch_mb=request.drain_batch_mb)
    return run(spark, config, fresh=request.fresh, progress=request.progress, follow=request.follow,
               should_stop=request.should_stop)


def _run_oracle(_spark, request: RunRequest) -> dict[str, str]:
    from experiments.reference.oracle import run_oracle

    result = run_oracle(request.input_dir, request.workdir, request.settings)
    return {**{query: "written" for query in result.results},
            **{query: "not applicable: " + why for query, why in result.not_applicable.items()}}


BUILDS: dict[str, Build] = {build.name: build for build in (
    Build("kappa", "one Structured Streaming application over a replayable log", _run_kappa,
          sources=("files", "kafka"), follows=True),
    Build("lambda", "master dataset, batch, speed and serving layers", _run_lambda,
          sources=("files", "kafka"), follows=True),
    Build("dstream", "the legacy DStream/RDD application", _run_dstream, follows=True),
    Build("oracle", "the reference: plain Python parsing and pandas, no Spark", _run_oracle, uses_spark=False),
)}
SPARK_BUILDS: tuple[str, ...] = tuple(name for name, build in BUILDS.items() if build.uses_spark)
