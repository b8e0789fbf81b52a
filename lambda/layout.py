"""Where the Lambda build keeps its master dataset, views and serving pointer.

WORKDIR/lambda/
  master/, quarantine/, ingest_log.csv, master_seq.csv, checkpoints/ingest, progress/
  serving.json             the serving pointer: the serving view version and its cutoff
  versions/<version>/      one view version (reprocessing: `lab lambda batch --version`)
    version.json           what it computes (its queries), its batch runs, when it retired
    batch_views/v<cutoff>.jsonl, batch_shipments/v<cutoff>.json
    realtime_views/after_v<cutoff>/<speed query>/batch-<id>.jsonl
    checkpoints/speed_after_v<cutoff>_<speed query>
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.catalogue import QUERY_NAMES
from shared.commit_log import commit_log_path
from shared.settings import DEFAULT_DRAIN_BATCH_MB, DEFAULT_KAFKA_BOOTSTRAP, WorkloadSettings
from shared.versions import DEFAULT_VERSION, check_version

BUILD = "lambda"
# An ingest micro-batch takes whole files up to about LAB_DRAIN_BATCH_MB (a drain pays its
# per-batch costs, Delta commits above all, rarely), and at least two batches are made
# when there are two files, so a cutoff falls between them (LambdaConfig.batch_mb).
DEFAULT_BATCH_MB = DEFAULT_DRAIN_BATCH_MB
# The speed layer's streaming queries, each with its own realtime views table: every
# additive query in one foreachBatch fan-out; fulfilment of the lines after the cutoff,
# following as a stream-stream join with every shipment, in a drain (`lab run lambda`,
# whose input is complete) as each micro-batch's lines joined with the shipment files
# there are (no join state to build); and fulfilment's backfill (shipments the batch
# views did not read with the lines up to the cutoff).
SPEED_VIEWS, SPEED_FULFILMENT, SPEED_BACKFILL = "views", "fulfilment", "fulfilment_backfill"
SPEED_DRAIN_FULFILMENT = "fulfilment_drain"
SPEED_QUERIES = (SPEED_VIEWS, SPEED_FULFILMENT, SPEED_DRAIN_FULFILMENT, SPEED_BACKFILL)
FULFILMENT_STREAMS = (SPEED_FULFILMENT, SPEED_DRAIN_FULFILMENT)  # one of them runs after a cutoff
MASTER_STREAMS = (SPEED_VIEWS, *FULFILMENT_STREAMS)  # the speed queries that read the master after the cutoff


@dataclass(frozen=True)
class LambdaConfig:
    input_dir: str
    workdir: str
    max_files_per_trigger: int | None = None  # None: by size (batch_mb), in at least two batches
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    batch_mb: int = DEFAULT_BATCH_MB
    source: str = "files"  # "files" (landing directory) or "kafka"
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    kafka_topic: str = "sales"
    version: str = DEFAULT_VERSION  # the view version its batch and speed layers write

    def __post_init__(self):
        if self.source not in ("files", "kafka"):
            raise ValueError(f"unknown source {self.source!r}: use files or kafka")
        check_version(self.version)

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
        return self.root / "ingest_log.csv"  # lines per ingest batch and outcome (master_dataset)

    @property
    def master_seq_log(self) -> Path:
        return self.root / "master_seq.csv"  # master version -> highest input seq (master_dataset)

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
        return self.root / "follow.pid"  # a `--follow` run's process id, while it runs

    @property
    def batch_request(self) -> Path:
        return self.root / "batch.request"  # `lab lambda batch` asks the follow run for a batch run

    def checkpoint(self, name: str) -> str:
        return str(self.root / "checkpoints" / name)

    @property
    def versions_root(self) -> Path:
        return self.root / "versions"

    @property
    def version_root(self) -> Path:
        """Every view of this config's view version (batch and realtime, speed checkpoints)."""
        return self.versions_root / self.version

    @property
    def version_manifest(self) -> Path:
        return self.version_root / "version.json"

    def speed_checkpoint(self, cutoff: int, name: str) -> str:
        return str(self.version_root / "checkpoints" / f"speed_after_v{cutoff:06d}_{name}")

    def progress_file(self, name: str) -> Path:
        return self.root / "progress" / f"{name}.jsonl"  # Spark's progress reports (shared/progress_log.py)

    def batch_views(self, cutoff: int) -> Path:
        """Every query's batch view over master versions <= cutoff (a view file, views.py)."""
        return self.version_root / "batch_views" / f"v{cutoff:06d}.jsonl"

    def batch_shipments(self, cutoff: int) -> Path:
        """The shipment files the batch views of `cutoff` read (JSON list of file names):
        the speed layer's fulfilment backfill pairs the others with the lines <= cutoff."""
        return self.version_root / "batch_shipments" / f"v{cutoff:06d}.json"

    def realtime_views(self, cutoff: int, name: str) -> Path:
        """A speed-layer query's realtime views over master versions > cutoff: a folder
        with a view file per micro-batch (`realtime_view_file`), added up by readers."""
        return self.version_root / "realtime_views" / f"after_v{cutoff:06d}" / name

    def realtime_view_file(self, cutoff: int, name: str, batch_id: int) -> Path:
        return self.realtime_views(cutoff, name) / f"batch-{batch_id:012d}.jsonl"
