"""The DStream build's configuration: where a run keeps its files (`DStreamConfig`), its
batch intervals and scan period, and the fingerprint of the logic its streaming checkpoint holds
(`logic_of`, `follow_config`).

Apart from the application (app.py) so that what only reads the configuration (the
landing, landing.py; the build registry, experiments/harness/builds.py) does not import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from legacy_dstream import pipeline as P
from shared import checkpoints
from shared.catalogue import QUERY_NAMES
from shared.commit_log import commit_log_path
from shared.progress_log import STEPS_SUFFIX
from shared.settings import DEFAULT_DRAIN_BATCH_MB, WorkloadSettings

BUILD = "dstream"
# Following: each batch visits the whole running state (updateStateByKey, every key, in
# Python), 1.5-2 s here even for one small file or none, so 2 s batches keep the driver
# saturated and a backlog (the first batch's start-up) never drains; 4 s leaves room.
# Landing is not tied to it: arrivals are landed within `SCAN_SECONDS`.
FOLLOW_BATCH_SECONDS = 4.0
SCAN_SECONDS = 0.5  # following: how often the input is scanned for new files
UNSUPPORTED: dict[str, str] = {}  # every query has a DStream form (see pipeline.py for what each gives up)


@dataclass(frozen=True)
class DStreamConfig:
    input_dir: str
    workdir: str
    # Every tick costs CPU even without data (PySpark builds each DStream's RDD through the
    # Python driver and checkpoints the graph: 0.1-0.5 s here), so a drain uses few, big batches.
    batch_seconds: float = 2.0
    follow_batch_seconds: float = FOLLOW_BATCH_SECONDS
    # Whole files landed together, one group per batch, about `batch_mb` of input (as the
    # other builds' drains: few batches, because every batch visits the whole running
    # state, fulfilment's join above all); `lines_per_batch` instead when given.
    batch_mb: int = DEFAULT_DRAIN_BATCH_MB
    lines_per_batch: int | None = None
    files_per_batch: int | None = None  # instead: this many files per group (tests: kills between batches)
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    timeout_seconds: float = 1800.0

    @property
    def root(self) -> Path:
        return Path(self.workdir) / BUILD

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def checkpoint(self) -> str:
        return str(self.root / "checkpoint")

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"

    @property
    def shipments_landing(self) -> Path:
        return self.root / "landing_shipments"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"  # each batch's output (publish.py `Snapshot`), keyed by batch time

    @property
    def steps_file(self) -> Path:
        return (
            self.root / "progress" / f"batches{STEPS_SUFFIX}.jsonl"
        )  # each batch's steps (shared/progress_log.BatchSteps)

    @property
    def results_table(self) -> str:
        return str(self.root / "tables" / "results")  # what readers query (publish.py `publish`)

    @property
    def commit_log(self) -> Path:
        return commit_log_path(self.workdir, BUILD)

    @property
    def ready_file(self) -> Path:
        return self.root / "first_batch_done"  # written when this run's first batch has run


def follow_config(config: DStreamConfig, recovering: bool, drain_logic: str) -> DStreamConfig:
    """A follow run's config: its own batch interval, except when it resumes the checkpoint
    of a drain (`drain_logic` recorded there), whose context keeps the interval it was
    written with."""
    if recovering and checkpoints.recorded_logic(config.checkpoint) == drain_logic:
        return config
    return replace(config, batch_seconds=config.follow_batch_seconds)


def logic_of(config: DStreamConfig, queries: Sequence[str], catalogue: dict | None) -> str:
    """The fingerprint of what the checkpoint's pickled functions compute: a recovered
    context runs the functions its checkpoint holds, so other logic must not resume it."""
    return checkpoints.fingerprint(
        (
            P.parse,
            P.order_lines,
            P.batch_totals,
            P.query_pairs,
            P._add_tuples,
            P.all_totals,
            P.shipments,
            P.fulfilment_pairs,
            P._join_step,
            tuple(queries),
            config.settings,
            config.batch_seconds,
            sorted((catalogue or {}).items()),
        )
    )
