"""Where the Lambda build keeps its master dataset, views and serving pointer."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.commit_log import commit_log_path
from shared.export import QUERY_NAMES
from shared.settings import DEFAULT_DRAIN_BATCH_MB, DEFAULT_KAFKA_BOOTSTRAP, WorkloadSettings

BUILD = "lambda"
# An ingest micro-batch takes whole files up to about LAB_DRAIN_BATCH_MB (a drain pays its
# per-batch costs, Delta commits above all, rarely), and at least two batches are made
# when there are two files, so a cutoff falls between them (LambdaConfig.batch_mb).
DEFAULT_BATCH_MB = DEFAULT_DRAIN_BATCH_MB
# The speed layer's streaming queries, each with its own realtime views table: every
# additive query in one foreachBatch fan-out, and fulfilment's stream-stream join.
SPEED_VIEWS, SPEED_FULFILMENT = "views", "fulfilment"
SPEED_QUERIES = (SPEED_VIEWS, SPEED_FULFILMENT)


@dataclass(frozen=True)
class LambdaConfig:
    input_dir: str
    workdir: str
    max_files_per_trigger: int | None = None   # None: by size (batch_mb), in at least two batches
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    batch_mb: int = DEFAULT_BATCH_MB
    source: str = "files"                      # "files" (landing directory) or "kafka"
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    kafka_topic: str = "sales"

    def __post_init__(self):
        if self.source not in ("files", "kafka"):
            raise ValueError(f"unknown source {self.source!r}: use files or kafka")

    @property
    def kafka(self) -> tuple[str, str] | None:
        """(bootstrap, topic) when ingesting from Kafka."""
        return (self.kafka_bootstrap, self.kafka_topic) if self.source == "kafka" else None

    @property
    def root(self) -> Path:
        return Path(self.workdir) / BUILD

    @property
    def master(self) -> str:
        return str(self.root / "master")  # immutable, append-only valid order lines

    @property
    def quarantine(self) -> str:
        """Quarantined lines with their reason: parquet, a folder per ingest batch
        (`ingest_batch=<id>`, rewritten whole if the batch is replayed)."""
        return str(self.root / "quarantine")

    @property
    def ingest_log(self) -> Path:
        return self.root / "ingest_log.csv"   # lines per ingest batch and outcome (master_dataset)

    @property
    def master_seq_log(self) -> Path:
        return self.root / "master_seq.csv"   # master version -> highest input seq (master_dataset)

    @property
    def commit_log(self) -> Path:
        return commit_log_path(self.workdir, BUILD)

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"

    @property
    def serving_pointer(self) -> Path:
        return self.root / "serving.json"

    @property
    def follow_pid(self) -> Path:
        return self.root / "follow.pid"       # a `--follow` run's process id, while it runs

    @property
    def batch_request(self) -> Path:
        return self.root / "batch.request"   # `lab lambda batch` asks the follow run for a batch run

    def checkpoint(self, name: str) -> str:
        return str(self.root / "checkpoints" / name)

    def speed_checkpoint(self, cutoff: int, name: str) -> str:
        return self.checkpoint(f"speed_after_v{cutoff:06d}_{name}")

    def progress_file(self, name: str) -> Path:
        return self.root / "progress" / f"{name}.jsonl"   # Spark's progress reports (shared/progress_log.py)

    def batch_views(self, cutoff: int) -> Path:
        """Every query's batch view over master versions <= cutoff (a view file, views.py)."""
        return self.root / "batch_views" / f"v{cutoff:06d}.jsonl"

    def realtime_views(self, cutoff: int, name: str) -> Path:
        """A speed-layer query's realtime views over master versions > cutoff: a folder
        with a view file per micro-batch (`realtime_view_file`), added up by readers."""
        return self.root / "realtime_views" / f"after_v{cutoff:06d}" / name

    def realtime_view_file(self, cutoff: int, name: str, batch_id: int) -> Path:
        return self.realtime_views(cutoff, name) / f"batch-{batch_id:012d}.jsonl"
