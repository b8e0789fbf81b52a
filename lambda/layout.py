"""Where the Lambda build keeps its master dataset, views and serving pointer."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.commit_log import commit_log_path
from shared.export import QUERY_NAMES
from shared.settings import WorkloadSettings

BUILD = "lambda"


@dataclass(frozen=True)
class LambdaConfig:
    input_dir: str
    workdir: str
    max_files_per_trigger: int | None = None
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)

    @property
    def root(self) -> Path:
        return Path(self.workdir) / BUILD

    @property
    def master(self) -> str:
        return str(self.root / "master")  # immutable, append-only valid order lines

    @property
    def quarantine(self) -> str:
        return str(self.root / "quarantine")

    @property
    def ingest_log(self) -> str:
        return str(self.root / "ingest_log")

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

    def checkpoint(self, name: str) -> str:
        return str(self.root / "checkpoints" / name)

    def batch_view(self, cutoff: int, query: str) -> str:
        return str(self.root / "batch_views" / f"v{cutoff:06d}" / query)

    def realtime_view(self, cutoff: int, query: str) -> str:
        return str(self.root / "realtime_views" / f"after_v{cutoff:06d}" / query)
